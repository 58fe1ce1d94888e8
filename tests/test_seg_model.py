"""The segmentation model: UperNet + auxiliary FCN head on every family's test backbone, through the contract only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hybridvision as hv
from hybridvision.checkpoint import CheckpointError
from hybridvision.models import InputError
from hybridvision.seg import HeadConfig, SegModel, SegModelConfig, load_weights
from hybridvision.seg.heads import InputRefine, UperNetHead

BACKBONES = hv.list_models(test=True, task="classification")  # one tiny variant per family
HEAD = HeadConfig(channels=16, pool_scales=(1, 2), aux_channels=8)


def seg(backbone: str, **kw) -> SegModel:
    cfg = dict(backbone=backbone, num_classes=5, in_chans=1, img_size=64, head=HEAD) | kw
    return SegModel(SegModelConfig(**cfg))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_family_gives_full_size_scores_and_gradients(backbone):
    model = seg(backbone)
    x = torch.randn(2, 1, 64, 64)
    logits, aux = model(x, with_aux=True)
    assert logits.shape == aux.shape == (2, 5, 64, 64) and torch.isfinite(logits).all()
    (logits.mean() + aux.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"  # pruned stages/norm/classifier: DDP-safe
    assert model.eval()(x).shape == (2, 5, 64, 64)


def test_default_levels_follow_the_paper_for_ascan_and_all_stages_otherwise():
    assert seg("ascan_test").levels == (2, 3, 4)  # S2-S4
    assert seg("coatnet_test").levels == (1, 2, 3, 4)
    model = seg("efficientmod_test", head=HeadConfig(feature_levels=(2, 4), channels=8, aux_channels=4))
    assert model.levels == (2, 4) and len(model.backbone.stages) == 4
    shallow = seg("coatnet_test", head=HeadConfig(feature_levels=(1, 2), channels=8, aux_channels=0))
    assert len(shallow.backbone.stages) == 2 and shallow.aux is None  # deeper stages pruned away


def test_unavailable_levels_and_bad_head_settings_name_the_fix():
    with pytest.raises(ValueError, match=r"cannot give feature level 5: it has levels 0..4"):
        seg("ascan_test", head=HeadConfig(feature_levels=(3, 5)))
    with pytest.raises(ValueError, match="must rise strictly"):
        HeadConfig(feature_levels=(3, 2))
    with pytest.raises(ValueError, match="aux_level 3 does not index"):
        seg("ascan_test", head=HeadConfig(aux_level=3))
    with pytest.raises(KeyError, match="unknown model"):
        SegModelConfig(backbone="ascan_tset")
    with pytest.raises(InputError, match="multiple of 32"):
        seg("ascan_test")(torch.randn(1, 1, 48, 48))


def test_upernet_head_matches_mmseg_layout():
    head = UperNetHead([8, 16, 32], channels=12, num_classes=3, pool_scales=(1, 2, 3, 6), dropout=0.0)
    feats = [torch.randn(2, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate((8, 16, 32))]
    assert head(feats).shape == (2, 3, 16, 16)  # at the finest level
    assert head.ppm_out.conv.in_channels == 32 + 4 * 12 and head.fuse.conv.in_channels == 3 * 12
    assert [m.conv.kernel_size for m in head.laterals] == [(1, 1)] * 2
    assert not head.ppm_out.conv.bias and isinstance(head.ppm_out.act, torch.nn.ReLU)  # conv-BN-ReLU


def test_fuse_keeps_the_output(randomize_batchnorms):
    model = seg("ascan_test", head=HeadConfig(channels=16, pool_scales=(1, 2), aux_channels=8, refine=4))
    randomize_batchnorms(model)
    torch.nn.init.normal_(model.refine.out.weight)  # zero at init: give the refinement a say in the output
    x = torch.randn(2, 1, 64, 64)
    want = model.eval()(x)
    torch.testing.assert_close(model.fuse()(x), want, atol=1e-4, rtol=1e-4)


def test_refinement_starts_as_the_identity_and_learns_pixel_edges():
    model = seg("ascan_test", head=HeadConfig(channels=16, pool_scales=(1, 2), aux_channels=8, refine=4)).eval()
    x = torch.randn(2, 1, 64, 64)
    feats = model.backbone.forward_intermediates(x, list(model.levels), intermediates_only=True)
    want = F.interpolate(model.decode(feats), size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(model(x), want)  # zero-initialised output conv: UperNet's scores, unchanged
    with pytest.raises(ValueError, match="head.refine must be >= 0"):
        HeadConfig(refine=-1)
    # The task it is for: a label that is the image's own edge at the pixel, from scores blurred like a
    # stride-4 head's. The refinement must beat the blurred scores it starts from.
    torch.manual_seed(0)
    image = (F.avg_pool2d(torch.rand(16, 1, 16, 16), 2) > 0.5).float().repeat_interleave(4, -1).repeat_interleave(4, -2)
    image = torch.roll(image, shifts=(1, 3), dims=(-2, -1))  # edges off the 4-pixel grid
    target = image[:, 0].long()  # (B, 1, H, W) -> (B, H, W)
    blurred = F.interpolate(
        F.avg_pool2d(F.one_hot(target, 2).permute(0, 3, 1, 2).float(), 4),
        scale_factor=4,
        mode="bilinear",
        align_corners=False,
    )  # a perfect stride-4 head, upsampled
    refine = InputRefine(1, 2, 8)
    opt = torch.optim.Adam(refine.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(refine(blurred * 4, image), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = (blurred.argmax(1) == target).float().mean()
    after = (refine.eval()(blurred * 4, image).argmax(1) == target).float().mean()
    assert before < 0.97 and after > 0.995, (before, after)


def test_backbone_starts_from_a_classifier_at_a_new_size(tmp_path):
    classifier = hv.create_model("ascan_test", in_chans=1, num_classes=10, img_size=64)
    hv.save_pretrained(classifier, tmp_path / "cls")
    model = seg("ascan_test", img_size=96)
    assert load_weights(model, tmp_path / "cls") == "backbone"
    stem = model.backbone.state_dict()["stem.conv1.weight"]
    assert torch.equal(stem, classifier.state_dict()["stem.conv1.weight"])
    table = next(k for k in model.backbone.state_dict() if k.endswith("rel_pos.table"))
    assert model.backbone.state_dict()[table].shape != classifier.state_dict()[table].shape  # resized to 96
    with pytest.raises(CheckpointError, match="another configuration"):
        load_weights(seg("coatnet_test"), tmp_path / "cls")


def test_registered_names_build_on_meta_and_are_measurable():
    from hybridvision.macs import model_cost
    from hybridvision.seg import zoo  # kept for `bench --import hybridvision.seg.zoo`

    assert "upernet_ascan_t" in hv.list_models(family="upernet", test=False)
    assert hv.list_models("upernet_*", test=True) == [
        "upernet_ascan_test",
        "upernet_coatnet_test",
        "upernet_efficientmod_test",
    ]
    assert zoo.register_variants() == []  # registered on import: nothing doubled
    cost = model_cost("upernet_ascan_test", img_size=64)
    assert cost.input_shape == (1, 1, 64, 64) and cost.macs > 0
    big = hv.get_config("upernet_ascan_t")
    assert (big.head.channels, big.head.aux_channels, big.img_size, big.drop_path_rate) == (512, 256, 512, 0.3)
    model = hv.create_model("upernet_coatnet_test", num_classes=3)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="2 or more images"):
        model(torch.randn(1, 1, 64, 64))  # training mode, batch 1: BatchNorm on a 1x1 map
