"""The denoisers: the AsCAN UNet and its layers, the text adapter, the diffusers baseline, SDXL's UNet, the zoo."""
