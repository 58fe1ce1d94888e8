"""Judging samples: FID on our classifier's features, the classifier as a judge, and scoring a denoiser."""
