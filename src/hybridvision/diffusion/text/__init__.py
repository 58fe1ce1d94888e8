"""Text conditioning: frozen encoders, their embedding cache, the prompt sets, and the encoder's own agreement."""
