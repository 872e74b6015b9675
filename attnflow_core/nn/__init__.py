"""Plain networks (never a FlowLayer): what layers, priors and models use to predict their parameters.

Belongs here: zero-initialised and data-normalised convs, coupling networks and their factories, Flow++'s
gated conv/attention net, the ConvLSTM, spectrally normalised (Lipschitz) layers with certified norms,
LipSwish, and the Lipschitz residual branches of i-ResNet / Residual Flows; later the RRDB encoder. Not here: anything invertible or with a log-det (that is ``flows``/``attention``).
Imports only ``attnflow_core.core``.
"""
from .convlstm import ConvLSTM
from .convs import NormConv2d, ZeroConv2d
from .coupling_nets import AffineNet, NetFactory, affine_net
from .flowpp import ConvAttnBlock, GatedConv, GatedSelfAttention, MixLogisticNet
from .lipschitz import LipSwish, SpectralConv2d, SpectralLinear, SpectralRefresh, refresh_spectral_norms
from .lipschitz_nets import LipschitzConvNet, LipschitzFCNet
from .norm import DataInitAffine, InitFlagMixin, data_init_affine
from .rrdb import RRDB, ResidualDenseBlock, RRDBNet

__all__ = ["ConvLSTM", "NormConv2d", "ZeroConv2d", "AffineNet", "NetFactory", "affine_net", "ConvAttnBlock",
           "GatedConv", "GatedSelfAttention", "MixLogisticNet", "DataInitAffine", "InitFlagMixin",
           "data_init_affine", "RRDB", "ResidualDenseBlock", "RRDBNet",
           "LipSwish", "SpectralConv2d", "SpectralLinear", "SpectralRefresh",
           "refresh_spectral_norms", "LipschitzConvNet", "LipschitzFCNet"]
