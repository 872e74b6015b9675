"""Plain networks (never a FlowLayer): what layers, priors and models use to predict their parameters.

Belongs here: zero-initialised and data-normalised convs, coupling networks and their factories, Flow++'s
gated conv/attention net, the ConvLSTM, spectrally normalised (Lipschitz) layers with certified norms,
LipSwish, and the Lipschitz residual branches of i-ResNet / Residual Flows, the RRDB encoder; the
Lipschitz attention maps of contractive flows (ACF's L2 / dot product in ``acf``, Zha's iDP / iCon in ``zha``,
their bounds in ``lipschitz_attention``) and their registry with declared options (``contractive_attention``).
Not here: anything invertible or with a log-det (that is ``flows``/``attention``).
Imports only ``attnflow_core.core``.
"""
from .acf import ACFPublishedDotAttention, L2SelfAttention, LipschitzDotAttention
from .contractive_attention import CONTRACTIVE_ATTENTIONS, AttentionKind
from .convlstm import ConvLSTM
from .convs import NormConv2d, ZeroConv2d
from .coupling_nets import AffineNet, NetFactory, affine_net
from .flowpp import ConvAttnBlock, GatedConv, GatedSelfAttention, MixLogisticNet
from .lipschitz import LipSwish, SpectralConv2d, SpectralLinear, SpectralRefresh, refresh_spectral_norms
from .lipschitz_nets import LipschitzConvNet, LipschitzFCNet
from .norm import DataInitAffine, InitFlagMixin, data_init_affine
from .rrdb import RRDB, ResidualDenseBlock, RRDBNet
from .zha import ZhaAttention

__all__ = ["ConvLSTM", "NormConv2d", "ZeroConv2d", "AffineNet", "NetFactory", "affine_net", "ConvAttnBlock",
           "GatedConv", "GatedSelfAttention", "MixLogisticNet", "DataInitAffine", "InitFlagMixin",
           "data_init_affine", "RRDB", "ResidualDenseBlock", "RRDBNet",
           "LipSwish", "SpectralConv2d", "SpectralLinear", "SpectralRefresh",
           "refresh_spectral_norms", "LipschitzConvNet", "LipschitzFCNet", "ACFPublishedDotAttention", "L2SelfAttention",
           "LipschitzDotAttention", "ZhaAttention", "CONTRACTIVE_ATTENTIONS", "AttentionKind"]
