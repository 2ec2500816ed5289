"""nerfreg-process acceptance: cup (77 photos) and fox (50 photos) against their shipped poses,
and held-out PSNR of colmap_short trained on the processed vs the shipped cup.

    python benchmarks/process_cup.py process --scene cup  --out /tmp/process_bench
    python benchmarks/process_cup.py process --scene fox  --out /tmp/process_bench --max-size 1000
    python benchmarks/process_cup.py train --data-root ../shared/data/cup --steps 2000 \
        --work-dir /tmp/process_bench/train_shipped
    python benchmarks/process_cup.py train --data-root /tmp/process_bench/cup --steps 2000 \
        --work-dir /tmp/process_bench/train_processed

`process` is resumable (rerunning reuses the finished stages) and prints one JSON line with
the report and the pose errors after a similarity (Umeyama) alignment of the camera centres:
camera centre RMS relative to the diagonal of the reference camera centres' bounding box,
rotation errors in degrees; `pose_aligned` repeats them with the similarity's rotation fitted
to centres and orientations together (equal weight, `compare_poses(orientation_weight=1)`).
`train` prints the held-out (every 8th view) PSNR/SSIM after ``--steps`` steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / 'shared' / 'data'


def run_process(args: argparse.Namespace) -> dict:
    from nerfreg.process.align import colmap_poses, compare_poses, ngp_poses
    from nerfreg.process.pipeline import ProcessOptions, process

    src = DATA / args.scene
    out = Path(args.out) / args.scene
    report = process(ProcessOptions(kind='images', source=src / 'images', out=out,
                                    max_size=args.max_size, num_threads=args.threads,
                                    camera_model=args.camera_model,
                                    per_image_camera=args.per_image_camera))
    est = colmap_poses(out / 'sparse' / '0')
    ref = (colmap_poses(src / 'sparse' / '0') if (src / 'sparse').is_dir()
           else ngp_poses(src / 'transforms.json'))
    errors = compare_poses(est, ref)
    errors['pose_aligned'] = compare_poses(est, ref, orientation_weight=1.0)
    if (src / 'sparse').is_dir():
        errors['axial_error_vs_reference_focal_corr'] = focal_correlation(est, ref, src)
    else:
        errors['centre_pixel_ray_median_deg'] = centre_ray_error(out, src, est, ref)
    keys = ('images_given', 'images_registered', 'not_registered', 'points',
            'mean_reprojection_error_px', 'mean_track_length', 'stages', 'total_seconds')
    return dict(scene=args.scene, **{k: report.get(k) for k in keys}, alignment=errors)


def focal_correlation(est: dict, ref: dict, src: Path) -> float:
    """Correlation, over images, between the centre error along the reference camera's
    optical axis and the reference's per-image focal length: near 1 when the reference's
    per-image focal lengths trade off against camera distance."""
    import numpy as np

    from nerfreg.datasets.colmap_io import read_model
    from nerfreg.process.align import umeyama

    cams, images, _ = read_model(src / 'sparse' / '0')
    focal = {im.name: cams[im.camera_id].params[0] for im in images.values()}
    names = sorted(set(est) & set(ref))
    c_est = np.stack([est[n][1] for n in names])
    c_ref = np.stack([ref[n][1] for n in names])
    s, rot, t = umeyama(c_est, c_ref)
    err = c_est @ (s * rot).T + t - c_ref
    axial = [(ref[n][0] @ e)[2] for n, e in zip(names, err)]
    return float(np.corrcoef(axial, [focal[n] for n in names])[0, 1])


def centre_ray_error(out: Path, src: Path, est: dict, ref: dict) -> float:
    """Median angle between the rays through the image centre pixel of the raw (distorted,
    original-pixel) model and of ``transforms.json``, after the similarity alignment: unlike
    the rotation error, it does not count a principal-point difference between the two
    calibrations as a pose error."""
    import json

    import numpy as np

    from nerfreg.cameras.conventions import qvec_to_rotmat
    from nerfreg.datasets.colmap_io import read_model
    from nerfreg.process.align import umeyama

    meta = json.loads((src / 'transforms.json').read_text())
    cams, images, _ = read_model(out / 'colmap' / 'sparse' / '0')
    raw = {im.name: (cams[im.camera_id].params, im) for im in images.values()}
    names = sorted(set(raw) & set(ref))
    _, rot, _ = umeyama(np.stack([est[n][1] for n in names]), np.stack([ref[n][1] for n in names]))
    w, h = meta['w'], meta['h']

    def ray(r_w2c, fx, fy, cx, cy):
        d = np.array([(w / 2 - cx) / fx, (h / 2 - cy) / fy, 1.0])
        return r_w2c.T @ (d / np.linalg.norm(d))

    angles = []
    for n in names:
        p, im = raw[n]  # SIMPLE_RADIAL / OPENCV: f or fx, fy first, then cx, cy
        fx, fy, cx, cy = (p[0], p[0], p[1], p[2]) if len(p) in (3, 4) else p[:4]
        ours = rot @ ray(qvec_to_rotmat(im.qvec), fx, fy, cx, cy)
        theirs = ray(ref[n][0], meta['fl_x'], meta['fl_y'], meta['cx'], meta['cy'])
        angles.append(np.degrees(np.arccos(np.clip(ours @ theirs, -1, 1))))
    return float(np.median(angles))


def run_train(args: argparse.Namespace) -> dict:
    from nerfreg.engine import DefaultTrainer
    from nerfreg.utils.config import load_config

    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'colmap_short.py')
    cfg.merge_from_dict({'data.data_root': str(args.data_root), 'work_dir': str(args.work_dir),
                         'train_cfg.max_steps': args.steps, 'train_cfg.val_interval': args.steps,
                         'default_hooks.checkpoint.interval': args.steps, 'custom_hooks': [],
                         'device': 'cpu', 'seed': args.seed, 'data.downscale': args.downscale})
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    return dict(data_root=str(args.data_root), steps=args.steps, seed=args.seed,
                downscale=args.downscale,
                num_gaussians=trainer.model.num_gaussians,
                **{k: float(v) for k, v in trainer.val_metrics.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('process')
    p.add_argument('--scene', choices=['cup', 'fox'], required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--max-size', type=int)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    p.add_argument('--camera-model', default='SIMPLE_RADIAL')
    p.add_argument('--per-image-camera', action='store_true')
    t = sub.add_parser('train')
    t.add_argument('--data-root', required=True)
    t.add_argument('--work-dir', required=True)
    t.add_argument('--steps', type=int, default=2000)
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--downscale', type=float, default=4, help="colmap_short's is 4")
    args = parser.parse_args()
    result = run_process(args) if args.cmd == 'process' else run_train(args)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
