"""P3M-Net(ViTAE-S), the IJCV 2023 state of the art."""

from p3m.architectures import ArchitectureSpec, interaction_switches, register_architecture


def _recognise(keys: set[str]):
    if "encoder.layers.0.RC.proj1.weight" not in keys or "decoder.decoder_final_l.weight" not in keys:
        return None
    return {"arch": "p3mnet-vitae-s", **interaction_switches(keys, "decoder.")}


register_architecture(ArchitectureSpec(
    name="p3mnet-vitae-s", title="P3M-Net (ViTAE-S)", builder="p3m.models.vitae:P3MNetViTAE",
    options={"tfi": True, "sbfi": True, "dbfi": True}, aliases=("vitae-s", "vitae"), recognise=_recognise,
    fixture="p3mnet_vitae_s",
    # The classifier and the Performer's norm1 exist in the checkpoint but not in the forward.
    frozen=("encoder.head.*", "*.attn.norm1.*"), backbone="encoder",
    backbone_files="the ImageNet ViTAE-S checkpoint the P3M authors link (ViTAE-S, 22M, 300 epochs)", preference=0,
))
