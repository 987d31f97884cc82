"""P3M-Net with the ResNet-34-mp encoder (ACM MM 2021), and its BASIC baseline."""

from p3m.architectures import ArchitectureSpec, interaction_switches, register_architecture

_INTERACTION = {"tfi": True, "sbfi": True, "dbfi": True}
#: ResNet-34-mp has ResNet-34's tensors (mp changes only how it downsamples), so these all fit.
_IMAGENET = ("torchvision's resnet34 (resnet34-b627a593.pth), timm's resnet34 (.pth or model.safetensors) "
             "or the authors' r34mp_pretrained_imagenet.pth.tar")


def _recognise(keys: set[str]):
    """Top-level ``resnet.*`` encoder and ``decoder_final_l``: the published layout."""
    if "resnet.conv1.weight" not in keys or "decoder_final_l.weight" not in keys:
        return None
    present = interaction_switches(keys)
    return {"arch": "p3mnet-r34" if any(present.values()) else "basic", **present}


register_architecture(ArchitectureSpec(
    name="p3mnet-r34", title="P3M-Net (ResNet-34)", builder="p3m.models.p3mnet:P3MNet",
    options=_INTERACTION, aliases=("resnet34", "r34", "p3mnet"), recognise=_recognise, fixture="p3mnet_r34",
    frozen=("resnet.fc.*",), backbone="resnet", backbone_files=_IMAGENET, preference=1,
))
register_architecture(ArchitectureSpec(
    name="basic", title="BASIC (P3M-Net without TFI, sBFI, dBFI)", builder="p3m.models.p3mnet:P3MNet",
    options={option: False for option in _INTERACTION}, frozen=("resnet.fc.*",), backbone="resnet",
    backbone_files=_IMAGENET, preference=2,
))
