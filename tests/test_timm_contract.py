"""timm's model-contract tests, ported onto our registry, plus hybridvision as a timm citizen.

The ``test_model_*`` functions are timm's (``tests/test_models.py`` of huggingface/pytorch-image-models at
aa4b585, timm 1.0.29.dev0) with their assertions kept as they are. What differs, and why:
- models: every test variant and every ``*_nano`` variant (ours, not timm's registry), each made two ways, by
  ``hybridvision.create_model`` and, with timm installed, by ``timm.create_model("hybridvision_<name>")``;
- ``pretrained=True`` reads ``$HYBRIDVISION_WEIGHTS``, filled by each test with a save_pretrained folder: we
  download nothing and timm's Hub weights are unreachable here;
- ``test_model_inference`` (Hub fixtures), ``test_model_default_cfgs_non_std`` (ViT-like models) and the
  TorchScript / torch.fx tests are not ported: not part of our contract. ``torch.export`` is, below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

import hybridvision as hv
from hybridvision.factory import WEIGHTS_ENV
from hybridvision.models.features import FeatureInfoList

MODEL_NAMES = hv.list_models(test=True, task="classification") + hv.list_models(
    "*_nano", test=False, task="classification"
)
TEST_NAMES = hv.list_models(test=True, task="classification")

torch_device = "cpu"
TARGET_FWD_SIZE = MAX_FWD_SIZE = 384
TARGET_BWD_SIZE = 128
MAX_BWD_SIZE = 320
MAX_FWD_OUT_SIZE = 448
TARGET_FFEAT_SIZE = 96
MAX_FFEAT_SIZE = 256
EXCLUDE_FILTERS: list[str] = []  # timm's filters name timm models; none of ours is too big for these tests
EARLY_POOL_MODELS = ()  # none of ours has a layer after the pool that global_pool='' could not run per position


def get_spatial_dim(fmt: str) -> tuple[int, int]:  # timm.layers.get_spatial_dim, for timm-free runs
    return (1, 2) if fmt == "NHWC" else (2, 3)


def get_channel_dim(fmt: str) -> int:  # timm.layers.get_channel_dim
    return 3 if fmt == "NHWC" else 1


@dataclass(frozen=True)
class Factory:
    """How a test makes models: our create_model, or timm's with our models registered."""

    create_model: Callable[..., torch.nn.Module]
    get_pretrained_cfg_value: Callable[[str, str], Any]
    FeatureInfo: Callable[[list, int], Any]  # timm.models.FeatureInfo(feature_info, out_indices) or ours


def _hybridvision() -> Factory:
    return Factory(
        hv.create_model,
        lambda name, key: hv.factory.pretrained_cfg(name).get(key),
        lambda info, n: FeatureInfoList(info[len(info) - n :]),
    )


def _timm(timm) -> Factory:
    import hybridvision.timm as hv_timm

    return Factory(
        lambda name, **kw: timm.create_model(hv_timm.timm_name(name), **kw),
        lambda name, key: timm.get_pretrained_cfg_value(hv_timm.timm_name(name), key),
        timm.models.FeatureInfo,
    )


@pytest.fixture(params=["hybridvision", "timm"])
def factory(request) -> Factory:
    return _hybridvision() if request.param == "hybridvision" else _timm(request.getfixturevalue("timm"))


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """``pretrained=True`` finds a freshly saved copy of the model here (our stand-in for the Hub)."""
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))

    def save(name: str) -> None:
        hv.save_pretrained(hv.create_model(name), tmp_path / name)

    return save


def _get_input_size(factory: Factory, model=None, model_name="", target=None):
    if model is None:
        assert model_name, "One of model or model_name must be provided"
        input_size = factory.get_pretrained_cfg_value(model_name, "input_size")
        fixed_input_size = factory.get_pretrained_cfg_value(model_name, "fixed_input_size")
        min_input_size = factory.get_pretrained_cfg_value(model_name, "min_input_size")
    else:
        default_cfg = model.default_cfg
        input_size = default_cfg["input_size"]
        fixed_input_size = default_cfg.get("fixed_input_size", None)
        min_input_size = default_cfg.get("min_input_size", None)
    assert input_size is not None

    if fixed_input_size:
        return input_size

    if min_input_size:
        if target and max(input_size) > target:
            input_size = min_input_size
    else:
        if target and max(input_size) > target:
            input_size = tuple([min(x, target) for x in input_size])
    return input_size


# ---- timm's tests


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("batch_size", [1])
def test_model_forward(factory, model_name, batch_size):
    """Run a single forward pass with each model"""
    model = factory.create_model(model_name, pretrained=False)
    model.eval()

    input_size = _get_input_size(factory, model=model, target=TARGET_FWD_SIZE)
    if max(input_size) > MAX_FWD_SIZE:
        pytest.skip("Fixed input size model > limit.")
    inputs = torch.randn((batch_size, *input_size))
    inputs = inputs.to(torch_device)
    model.to(torch_device)
    outputs = model(inputs)

    assert outputs.shape[0] == batch_size
    assert not torch.isnan(outputs).any(), "Output included NaNs"

    # Test that grad-checkpointing, if supported, doesn't cause model failures or change in output
    try:
        model.set_grad_checkpointing()
    except Exception:
        # throws if not supported, that's fine
        pass
    else:
        outputs2 = model(inputs)
        if isinstance(outputs, tuple):
            outputs2 = torch.cat(outputs2)
        assert torch.allclose(outputs, outputs2, rtol=1e-4, atol=1e-5), "Output does not match"


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("batch_size", [2])
def test_model_backward(factory, model_name, batch_size):
    """Run a single forward pass with each model"""
    input_size = _get_input_size(factory, model_name=model_name, target=TARGET_BWD_SIZE)
    if max(input_size) > MAX_BWD_SIZE:
        pytest.skip("Fixed input size model > limit.")

    model = factory.create_model(model_name, pretrained=False, num_classes=42)
    encoder_only = model.num_classes == 0  # FIXME better approach?
    num_params = sum([x.numel() for x in model.parameters()])
    model.train()

    inputs = torch.randn((batch_size, *input_size))
    inputs = inputs.to(torch_device)
    model.to(torch_device)
    outputs = model(inputs)
    if isinstance(outputs, tuple):
        outputs = torch.cat(outputs)
    outputs.mean().backward()
    for n, x in model.named_parameters():
        assert x.grad is not None, f"No gradient for {n}"
    num_grad = sum([x.grad.numel() for x in model.parameters() if x.grad is not None])

    if encoder_only:
        output_fmt = getattr(model, "output_fmt", "NCHW")
        feat_axis = get_channel_dim(output_fmt)
        assert outputs.shape[feat_axis] == model.num_features, (
            f"unpooled feature dim {outputs.shape[feat_axis]} != model.num_features {model.num_features}"
        )
    else:
        assert outputs.shape[-1] == 42
    assert num_params == num_grad, "Some parameters are missing gradients"
    assert not torch.isnan(outputs).any(), "Output included NaNs"


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("batch_size", [1])
def test_model_default_cfgs(factory, model_name, batch_size):
    """Run a single forward pass with each model"""
    create_model = factory.create_model
    model = create_model(model_name, pretrained=False)
    model.eval()
    model.to(torch_device)
    assert model.num_classes >= 0
    assert model.num_features > 0
    assert model.head_hidden_size > 0
    state_dict = model.state_dict()
    cfg = model.default_cfg

    pool_size = cfg["pool_size"]
    input_size = model.default_cfg["input_size"]
    output_fmt = getattr(model, "output_fmt", "NCHW")
    spatial_axis = get_spatial_dim(output_fmt)
    assert len(spatial_axis) == 2  # TODO add 1D sequence support
    feat_axis = get_channel_dim(output_fmt)

    if all([x <= MAX_FWD_OUT_SIZE for x in input_size]):  # timm also skips EXCLUDE_FILTERS (empty for ours)
        # output sizes only checked if default res <= 448 * 448 to keep resource down
        input_size = tuple([min(x, MAX_FWD_OUT_SIZE) for x in input_size])
        input_tensor = torch.randn((batch_size, *input_size), device=torch_device)

        # test forward_features (always unpooled) & forward_head w/ pre_logits
        outputs = model.forward_features(input_tensor)
        outputs_pre = model.forward_head(outputs, pre_logits=True)
        assert outputs.shape[spatial_axis[0]] == pool_size[0], f"unpooled feature shape {outputs.shape} != config"
        assert outputs.shape[spatial_axis[1]] == pool_size[1], f"unpooled feature shape {outputs.shape} != config"
        assert outputs.shape[feat_axis] == model.num_features, (
            f"unpooled feature dim {outputs.shape[feat_axis]} != model.num_features {model.num_features}"
        )
        assert outputs_pre.shape[1] == model.head_hidden_size, (
            f"pre_logits feature dim {outputs_pre.shape[1]} != model.head_hidden_size {model.head_hidden_size}"
        )

        # test forward after deleting the classifier, output should be poooled, size(-1) == model.num_features
        model.reset_classifier(0)
        assert model.num_classes == 0, (
            f"Expected num_classes to be 0 after reset_classifier(0), but got {model.num_classes}"
        )
        model.to(torch_device)
        outputs = model.forward(input_tensor)
        assert len(outputs.shape) == 2
        assert outputs.shape[1] == model.head_hidden_size, (
            f"feature dim w/ removed classifier {outputs.shape[1]} != model.head_hidden_size {model.head_hidden_size}"
        )
        assert outputs.shape == outputs_pre.shape, (
            f"output shape of pre_logits {outputs_pre.shape} does not match reset_head(0) {outputs.shape}"
        )

        # test model forward after removing pooling and classifier
        if not isinstance(model, EARLY_POOL_MODELS):
            model.reset_classifier(0, "")  # reset classifier and disable global pooling
            model.to(torch_device)
            outputs = model.forward(input_tensor)
            assert len(outputs.shape) == 4
            assert outputs.shape[spatial_axis[0]] == pool_size[0] and outputs.shape[spatial_axis[1]] == pool_size[1]

        # test classifier + global pool deletion via __init__
        if "pruned" not in model_name and not isinstance(model, EARLY_POOL_MODELS):
            model = create_model(model_name, pretrained=False, num_classes=0, global_pool="").eval()
            model.to(torch_device)
            outputs = model.forward(input_tensor)
            assert len(outputs.shape) == 4
            assert outputs.shape[spatial_axis[0]] == pool_size[0] and outputs.shape[spatial_axis[1]] == pool_size[1]

    # check classifier name matches default_cfg
    if cfg.get("num_classes", None):
        classifier = cfg["classifier"]
        if not isinstance(classifier, (tuple, list)):
            classifier = (classifier,)
        for c in classifier:
            assert c + ".weight" in state_dict.keys(), f"{c} not in model params"

    # check first conv(s) names match default_cfg
    first_conv = cfg["first_conv"]
    if isinstance(first_conv, str):
        first_conv = (first_conv,)
    assert isinstance(first_conv, (tuple, list))
    for fc in first_conv:
        assert fc + ".weight" in state_dict.keys(), f"{fc} not in model params"


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("batch_size", [1])
def test_model_load_pretrained(factory, weights_dir, model_name, batch_size):
    """Create that pretrained weights load, verify support for in_chans != 3 while doing so."""
    weights_dir(model_name)  # our stand-in for timm's Hub weights
    create_model = factory.create_model
    in_chans = 3 if "pruned" in model_name else 1  # pruning not currently supported with in_chans change
    create_model(model_name, pretrained=True, in_chans=in_chans, num_classes=5)
    create_model(model_name, pretrained=True, in_chans=in_chans, num_classes=0)


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("batch_size", [1])
def test_model_features_pretrained(factory, weights_dir, model_name, batch_size):
    """Create that pretrained weights load when features_only==True."""
    weights_dir(model_name)
    factory.create_model(model_name, pretrained=True, features_only=True)


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("batch_size", [1])
def test_model_forward_features(factory, model_name, batch_size):
    """Run a single forward pass with each model in feature extraction mode"""
    model = factory.create_model(model_name, pretrained=False, features_only=True)
    model.eval()
    expected_channels = model.feature_info.channels()
    expected_reduction = model.feature_info.reduction()
    assert len(expected_channels) >= 3  # all models here should have at least 3 default feat levels

    input_size = _get_input_size(factory, model=model, target=TARGET_FFEAT_SIZE)
    if max(input_size) > MAX_FFEAT_SIZE:
        pytest.skip("Fixed input size model > limit.")
    output_fmt = getattr(model, "output_fmt", "NCHW")
    feat_axis = get_channel_dim(output_fmt)
    spatial_axis = get_spatial_dim(output_fmt)

    outputs = model(torch.randn((batch_size, *input_size)))
    assert len(expected_channels) == len(outputs)
    spatial_size = input_size[-2:]
    for e, r, o in zip(expected_channels, expected_reduction, outputs):
        assert e == o.shape[feat_axis]
        assert o.shape[spatial_axis[0]] <= math.ceil(spatial_size[0] / r) + 1
        assert o.shape[spatial_axis[1]] <= math.ceil(spatial_size[1] / r) + 1
        assert o.shape[0] == batch_size
        assert not torch.isnan(o).any()


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("batch_size", [1])
def test_model_forward_intermediates_features(factory, model_name, batch_size):
    """Run a single forward pass with each model in feature extraction mode"""
    model = factory.create_model(model_name, pretrained=False, features_only=True, feature_cls="getter")
    model.eval()
    expected_channels = model.feature_info.channels()
    expected_reduction = model.feature_info.reduction()

    input_size = _get_input_size(factory, model=model, target=TARGET_FFEAT_SIZE)
    if max(input_size) > MAX_FFEAT_SIZE:
        pytest.skip("Fixed input size model > limit.")
    output_fmt = getattr(model, "output_fmt", "NCHW")
    feat_axis = get_channel_dim(output_fmt)
    spatial_axis = get_spatial_dim(output_fmt)

    outputs = model(torch.randn((batch_size, *input_size)))
    assert len(expected_channels) == len(outputs)
    spatial_size = input_size[-2:]
    for e, r, o in zip(expected_channels, expected_reduction, outputs):
        assert e == o.shape[feat_axis]
        assert o.shape[spatial_axis[0]] <= math.ceil(spatial_size[0] / r) + 1
        assert o.shape[spatial_axis[1]] <= math.ceil(spatial_size[1] / r) + 1
        assert o.shape[0] == batch_size
        assert not torch.isnan(o).any()


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("batch_size", [1])
def test_model_forward_intermediates(factory, model_name, batch_size):
    """Run a single forward pass with each model in feature extraction mode"""
    model = factory.create_model(model_name, pretrained=False)
    model.eval()
    feature_info = factory.FeatureInfo(model.feature_info, len(model.feature_info))
    expected_channels = feature_info.channels()
    expected_reduction = feature_info.reduction()
    assert len(expected_channels) >= 3  # all models here should have at least 3 feature levels

    input_size = _get_input_size(factory, model=model, target=TARGET_FFEAT_SIZE)
    if max(input_size) > MAX_FFEAT_SIZE:
        pytest.skip("Fixed input size model > limit.")
    output_fmt = "NCHW"  # NOTE output_fmt determined by forward_intermediates() arg, not model attribute
    feat_axis = get_channel_dim(output_fmt)
    spatial_axis = get_spatial_dim(output_fmt)

    inpt = torch.randn((batch_size, *input_size))
    output, intermediates = model.forward_intermediates(
        inpt,
        output_fmt=output_fmt,
    )
    assert len(expected_channels) == len(intermediates)
    spatial_size = input_size[-2:]
    for e, r, o in zip(expected_channels, expected_reduction, intermediates):
        assert e == o.shape[feat_axis]
        assert o.shape[spatial_axis[0]] <= math.ceil(spatial_size[0] / r) + 1
        assert o.shape[spatial_axis[1]] <= math.ceil(spatial_size[1] / r) + 1
        assert o.shape[0] == batch_size
        assert not torch.isnan(o).any()

    output2 = model.forward_features(inpt)
    assert torch.allclose(output, output2)

    # Test that grad-checkpointing, if supported
    try:
        model.set_grad_checkpointing()
    except Exception:
        # throws if not supported, that's fine
        pass
    else:
        output3, _ = model.forward_intermediates(
            inpt,
            output_fmt=output_fmt,
        )
        assert torch.allclose(output, output3, rtol=1e-4, atol=1e-5), "Output does not match"


# ---- Beyond timm's file: the rest of the contract


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_features_only_equals_forward_intermediates(factory, model_name):
    torch.manual_seed(0)
    model = factory.create_model(model_name, pretrained=False).eval()
    x = torch.randn(2, *model.default_cfg["input_size"])
    full = model.forward_intermediates(x, intermediates_only=True)
    for out_indices in ((1, 2, 3, 4), (0, 2), 2):
        torch.manual_seed(0)  # the same initial weights as the full model's
        feats = factory.create_model(model_name, features_only=True, out_indices=out_indices).eval()
        levels = range(len(full))[-out_indices:] if isinstance(out_indices, int) else out_indices
        assert feats.feature_info.channels() == [model.feature_info[i]["num_chs"] for i in levels]
        for got, i in zip(feats(x), levels, strict=True):
            torch.testing.assert_close(got, full[i], atol=0, rtol=0)


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_set_input_size_then_forward(factory, model_name):
    model = factory.create_model(model_name, pretrained=False).eval()
    c, h, w = model.default_cfg["input_size"]
    s = model.stride
    model.set_input_size((h + s, w + 2 * s))
    assert model.default_cfg["input_size"] == (c, h + s, w + 2 * s)
    assert model(torch.randn(1, c, h + s, w + 2 * s)).shape == (1, model.num_classes)


@pytest.mark.parametrize("name", TEST_NAMES)
def test_torch_export_of_the_feature_extractor(name):
    """torch.export (dynamic batch) of every family's feature form; its forward is exported in test_export.py."""
    model = hv.create_model(name, features_only=True).eval()
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    batch = torch.export.Dim("batch", min=1, max=16)
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    for got, want in zip(program.module()(x[:1]), model(x[:1]), strict=True):
        torch.testing.assert_close(got, want)


# ---- Through timm


def test_timm_lists_every_model_with_its_cfg(timm):
    import hybridvision.timm as hv_timm

    assert hv_timm.register() == [
        hv_timm.timm_name(n) for n in hv.list_models(task="classification")
    ]  # again: nothing doubled
    assert timm.list_models("hybridvision_*") == sorted(
        hv_timm.timm_name(n) for n in hv.list_models(task="classification")
    )
    cfg = timm.models.get_pretrained_cfg("hybridvision_coatnet_nano_rw_224")
    assert (cfg.input_size, cfg.mean, cfg.crop_pct) == ((3, 224, 224), (0.5, 0.5, 0.5), 0.9)
    assert (cfg.first_conv, cfg.classifier, cfg.architecture) == (
        "stem.conv1",
        "head.fc",
        "hybridvision_coatnet_nano_rw_224",
    )
    model = timm.create_model("hybridvision_efficientmod_test", drop_rate=0.1, global_pool="max", layout="M-M-MA-A")
    assert (model.config.drop_rate, model.config.global_pool, model.config.layout[1]) == (0.1, "max", "M")
    data = timm.data.resolve_model_data_config(model)
    assert data["input_size"] == (3, 64, 64) and data["interpolation"] == "bicubic"


def test_timm_pretrained_sources(timm, tmp_path):
    src = timm.create_model("hybridvision_coatnet_test", num_classes=4).eval()
    hv.save_pretrained(src, tmp_path)
    x = torch.randn(1, 3, 64, 64)
    file = str(tmp_path / "model.safetensors")
    name = "hybridvision_coatnet_test"
    kinds = {
        "local-dir": timm.create_model(f"local-dir:{tmp_path}", pretrained=True),
        "overlay": timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=file)),
        "checkpoint_path": timm.create_model(name, num_classes=4, checkpoint_path=file),
    }
    assert kinds["overlay"].num_classes == 10  # a new head of the registered size; the trunk is the file's
    for kind, model in kinds.items():
        got = model.eval().forward_features(x)
        torch.testing.assert_close(got, src.forward_features(x), atol=0, rtol=0, msg=kind)
    with pytest.raises(hv.CheckpointError, match="downloads nothing"):
        timm.create_model("hybridvision_coatnet_test", pretrained=True)
    with pytest.raises(ValueError, match="output_stride=16: hybridvision models keep their total stride of 32"):
        timm.create_model("hybridvision_coatnet_test", features_only=True, output_stride=16)


def test_timm_layer_decay_uses_the_group_matcher(timm):
    import timm.optim

    model = timm.create_model("hybridvision_ascan_test")
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    scales = {n: g["lr_scale"] for g in optimizer.param_groups for n in _names(model, g["params"])}
    first_block = next(n for n in scales if n.startswith("stages.0.blocks.0."))
    last_block = next(n for n in scales if n.startswith("stages.3.blocks.1."))
    assert scales["stem.conv1.weight"] < scales[first_block] < scales[last_block] < scales["head.fc.weight"] == 1
    no_decay = {n for g in optimizer.param_groups if g["weight_decay"] == 0 for n in _names(model, g["params"])}
    assert no_decay == model.no_weight_decay()


def _names(model, params) -> list[str]:
    ids = {id(p) for p in params}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def test_smp_unet_on_an_ascan_backbone(timm):
    smp = pytest.importorskip("segmentation_models_pytorch")
    import hybridvision.timm  # noqa: F401  (registers the models smp's "tu-" encoders ask timm for)

    unet = smp.Unet("tu-hybridvision_ascan_test", encoder_weights=None, encoder_depth=5, classes=3).eval()
    assert unet.encoder.out_channels == [3, 16, 16, 32, 32, 64]  # the input, the stem, then the four stages
    assert unet(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)
