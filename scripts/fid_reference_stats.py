"""FID reference statistics of real images under our classifier (default: Fashion-MNIST t10k).

    python scripts/fid_reference_stats.py assets/fmnist_ascan_nano --out assets/fmnist_ascan_nano/t10k_stats.safetensors

CLASSIFIER_DIR is a save_pretrained folder (e.g. a classification run's final/). The file records the mean and
covariance of the classifier's penultimate features over the split, the split, N, the classifier's top-1 on it
and a digest of its weights (statistics made with other weights are refused at evaluation time).
"""

from __future__ import annotations

import argparse

import torch

from hybridvision.data import FASHION_MNIST_DIR
from hybridvision.diffusion.config import DiffusionDataConfig
from hybridvision.diffusion.eval.fid import save_stats
from hybridvision.diffusion.eval.judge import load_classifier, weights_digest
from hybridvision.diffusion.eval.score import load_images, real_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("classifier", help="save_pretrained folder of the classifier")
    parser.add_argument("--out", required=True, help="safetensors file to write")
    parser.add_argument("--root", default=FASHION_MNIST_DIR, help="folder of the idx files")
    parser.add_argument("--split", default="t10k", help="idx split (default: t10k)")
    parser.add_argument("--img-size", type=int, default=32, help="images are zero-padded to this size")
    parser.add_argument("--subset", type=int, default=0, help="only the first N images (0 = all)")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    probe = load_classifier(args.classifier)
    images, labels = load_images(DiffusionDataConfig(root=args.root), args.split, args.img_size, args.subset)
    with torch.inference_mode():
        ref = real_reference(probe, images, labels, args.batch_size, args.split)
    meta = {"split": args.split, "classifier": weights_digest(args.classifier), "top1": f"{ref.top1:.4f}"}
    save_stats(ref.stats, args.out, dim=str(ref.stats.dim), img_size=str(args.img_size), **meta)
    print(f"{args.out}: {ref.stats.n} images of {args.split}, d={ref.stats.dim}, classifier top-1 {ref.top1:.2f}%")


if __name__ == "__main__":
    main()
