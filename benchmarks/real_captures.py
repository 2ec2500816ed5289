"""Real-capture protocols of issue #15 on modified copies of a COLMAP scene (default: cup).

    python benchmarks/real_captures.py all --steps 10000 --work /tmp/realcap_bench
    python benchmarks/real_captures.py pose --steps 1000 --downscale 8   # a quick look

Variants are written under ``--work`` (never beside the data; unchanged images are
symlinked) and each is trained with ``configs/gaussian_splatting/colmap_short.py`` for
exactly ``--steps`` steps (the means lr schedule is fitted to that length), then scored on
the held-out test views, which are never modified. Protocols (docs/real_captures.md):

- ``pose``: training cameras rotated by a random 1 degree and moved by 1% of the extent;
  clean, perturbed, perturbed + camera_opt, clean + camera_opt; pose errors before/after.
- ``appearance``: random exposure x0.6..1.6 and white balance x0.9..1.1 on training images;
  clean, gains, gains + appearance.
- ``mask``: a moving disc painted into every second training image; clean, painted,
  painted + masks.
- ``depth``: the scene (and ``--depth-scenes``) with and without depth_loss; a
  ``transforms.json`` capture (fox) gets its points from known-pose triangulation, in both
  runs.

Results go to ``<work>/results.json`` and stdout. Figures depend only on the step count and
seeds, not on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfreg.cameras.conventions import qvec_to_rotmat, rotmat_to_qvec  # noqa: E402
from nerfreg.datasets.base import natural_key, split_indices  # noqa: E402
from nerfreg.datasets.colmap_io import read_model, write_model  # noqa: E402

CONFIG = REPO / 'configs' / 'gaussian_splatting' / 'colmap_short.py'
HOLDOUT, VAL_EVERY = 8, 8  # colmap.py / colmap_short.py


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()


def training_names(scene: Path) -> tuple[list[str], list]:
    """(names of the training views, all images sorted) under the dataset's split rules."""
    _, images, _ = read_model(scene / 'sparse' / '0')
    entries = sorted(images.values(), key=lambda im: natural_key(im.name))
    train, _, _ = split_indices(len(entries), HOLDOUT, VAL_EVERY)
    return [entries[i].name for i in train], entries


def camera_centres(entries: list) -> dict[str, np.ndarray]:
    return {im.name: -qvec_to_rotmat(im.qvec).T @ im.tvec for im in entries}


def extent_of(entries: list, names: list[str]) -> float:
    c = np.stack([camera_centres(entries)[n] for n in names])
    return 1.1 * float(np.linalg.norm(c - c.mean(0), axis=1).max())


def new_scene(src: Path, dest: Path, link_images: bool = True) -> None:
    (dest / 'sparse' / '0').mkdir(parents=True, exist_ok=True)
    (dest / 'images').mkdir(exist_ok=True)
    if link_images:
        for f in (src / 'images').iterdir():
            if not (dest / 'images' / f.name).exists():
                (dest / 'images' / f.name).symlink_to(f.resolve())


# ---------------------------------------------------------------------------- variants
def make_pose_variant(src: Path, dest: Path, seed: int = 0) -> dict:
    """Training cameras rotated by 1 degree (random axis) and moved by 1% of the extent."""
    cams, images, points = read_model(src / 'sparse' / '0')
    names, entries = training_names(src)
    ext = extent_of(entries, names)
    rng = np.random.default_rng(seed)
    for im in images.values():
        if im.name not in names:
            continue
        r_c2w = qvec_to_rotmat(im.qvec).T
        centre = -r_c2w @ im.tvec
        r_c2w = r_c2w @ axis_angle(rng.normal(size=3), math.radians(1.0))
        move = rng.normal(size=3)
        centre = centre + 0.01 * ext * move / np.linalg.norm(move)
        im.qvec = rotmat_to_qvec(r_c2w.T)
        im.tvec = -r_c2w.T @ centre
    new_scene(src, dest)
    write_model(cams, images, points, dest / 'sparse' / '0', '.bin')
    return dict(extent=ext, n_perturbed=len(names))


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    if path.is_symlink():
        path.unlink()
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def make_appearance_variant(src: Path, dest: Path, seed: int = 0) -> dict:
    """Random exposure (x0.6..1.6) and white balance (x0.9..1.1 per channel), train only."""
    cams, images, points = read_model(src / 'sparse' / '0')
    names, _ = training_names(src)
    new_scene(src, dest)
    write_model(cams, images, points, dest / 'sparse' / '0', '.bin')
    rng = np.random.default_rng(seed)
    gains = {}
    for name in names:
        gain = rng.uniform(0.6, 1.6) * rng.uniform(0.9, 1.1, size=3)
        img = read_rgb(src / 'images' / name).astype(np.float64) * gain
        write_jpeg(dest / 'images' / name, np.clip(img + 0.5, 0, 255).astype(np.uint8))
        gains[name] = gain.tolist()
    return dict(mean_gain=float(np.mean([np.mean(g) for g in gains.values()])))


def make_mask_variant(src: Path, dest: Path, seed: int = 0) -> dict:
    """A disc moving across the frame painted into every second training image; masks
    (the disc, dilated) for every image."""
    cams, images, points = read_model(src / 'sparse' / '0')
    names, entries = training_names(src)
    new_scene(src, dest)
    write_model(cams, images, points, dest / 'sparse' / '0', '.bin')
    (dest / 'masks').mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    painted = names[::2]
    for im in entries:
        h, w = read_rgb(src / 'images' / im.name).shape[:2]
        mask = np.full((h, w), 255, np.uint8)
        if im.name in painted:
            k = painted.index(im.name) / max(1, len(painted) - 1)
            centre = (int(w * (0.15 + 0.7 * k)), int(h * (0.3 + 0.4 * rng.random())))
            radius = int(0.12 * w)
            img = read_rgb(src / 'images' / im.name)
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            cv2.circle(img, centre, radius, colour, -1)
            write_jpeg(dest / 'images' / im.name, img)
            cv2.circle(mask, centre, radius + max(2, w // 100), 0, -1)
        cv2.imwrite(str(dest / 'masks' / (Path(im.name).stem + '.png')), mask)
    return dict(n_painted=len(painted))


# ---------------------------------------------------------------------------- training
def train(scene: Path, work: Path, steps: int, downscale: float, options: dict,
          seed: int = 0, split: str = 'test', reference: Path | None = None) -> dict:
    """Train colmap_short.py on ``scene`` for ``steps``; PSNR/SSIM on ``split`` ('test' to
    report, 'val' to tune) and, with camera_opt and a ``reference`` scene, the pose errors.

    The schedule is colmap_short's fitted to ``steps``: means lr decay over the run, the
    pose/appearance lr decay over the run, densification stopping at 40% of it (4000 of
    10000 in the shipped config). A finished run's result (``result.json``, keyed by these
    arguments) is reused.
    """
    key = dict(scene=str(scene), steps=steps, downscale=downscale, options=options, seed=seed,
               split=split, reference=str(reference))
    done = work / 'result.json'
    if done.is_file():
        old = json.loads(done.read_text())
        if old.get('key') == key:
            return old['result']
    from nerfreg.engine import DefaultTrainer
    from nerfreg.utils.config import load_config
    cfg = load_config(CONFIG)
    if (scene / 'transforms.json').is_file():  # an instant-ngp capture: same schedule
        cfg.data.dataset = dict(type='NGPDataset', data_root=str(scene), holdout_every=HOLDOUT,
                                val_every=VAL_EVERY, background='white')
        cfg.model.background = 'white'  # as configs/gaussian_splatting/ngp.py
    cfg.merge_from_dict({
        'work_dir': str(work), 'seed': seed, 'data.data_root': str(scene),
        'data.downscale': downscale, 'train_cfg.max_steps': steps,
        'train_cfg.val_interval': 0, 'default_hooks.checkpoint.interval': 10 ** 9,
        'default_hooks.checkpoint.save_last': True, 'default_hooks.logger.interval': 500,
        'optimizer.strategy.refine_stop': int(0.4 * steps),
        'camera_opt.decay_steps': steps, 'appearance.decay_steps': steps, **options})
    cfg.custom_hooks = []
    cfg.param_scheduler = [dict(type='ExponentialDecayLR', groups=['means'], max_steps=steps,
                                final_ratio=0.01)]
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    metrics = trainer.validation() if split == 'val' else trainer.test()
    result = {k: float(v) for k, v in metrics.items()
              if k.startswith(('psnr', 'ssim', 'aligned'))}
    if reference is not None and 'camera_opt' in trainer.model.scene_modules:
        result['pose_error'] = pose_errors(trainer, reference)
    work.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(dict(key=key, result=result), indent=1))
    return result


def pose_errors(trainer, clean: Path) -> dict:
    """Mean rotation (deg) and translation (% of extent) error of the training poses against
    the clean ones: recorded (perturbed) and, with camera_opt, refined."""
    _, entries = training_names(clean)
    clean_c = camera_centres(entries)
    clean_r = {im.name: qvec_to_rotmat(im.qvec) for im in entries}
    cams = trainer.scene.train.cameras
    ext = extent_of(entries, list(cams.names))
    out = {}
    sets = {'recorded': cams}
    module = trainer.model.scene_modules['camera_opt'] if 'camera_opt' in \
        trainer.model.scene_modules else None
    if module is not None:
        sets['refined'] = module.corrected_cameras(cams.to(module.delta.device))
    for key, cs in sets.items():
        rot, trans = [], []
        for i, name in enumerate(cs.names):
            r = cs.R[i].double().cpu().numpy()
            cos = (np.trace(r @ clean_r[name].T) - 1) / 2
            rot.append(math.degrees(math.acos(min(1.0, max(-1.0, cos)))))
            c = cs.centers()[i].double().cpu().numpy()
            trans.append(100 * np.linalg.norm(c - clean_c[name]) / ext)
        out[key] = dict(rot_deg=float(np.mean(rot)), trans_pct_extent=float(np.mean(trans)))
    return out


def sparse_points_of(scene: Path, out: str | None = None) -> dict:
    """Options that give ``scene`` SfM points: none for COLMAP scenes; for a
    ``transforms.json`` capture, its known-pose triangulation (``nerfreg-process
    triangulate``, made once into the nerfreg cache and reused)."""
    if not (scene / 'transforms.json').is_file():
        return {}
    from nerfreg.process.triangulate import TriangulateOptions, triangulate
    report = triangulate(TriangulateOptions(transforms=scene / 'transforms.json', max_size=1200,
                                            out=Path(out) if out else None, quiet=True))
    return {'data.sparse_dir': report['out']}


def recovery(clean: float, broken: float, fixed: float) -> float | None:
    lost = clean - broken
    return None if abs(lost) < 1e-9 else (fixed - broken) / lost


def run(args: argparse.Namespace) -> dict:
    src, work = Path(args.scene).resolve(), Path(args.work).resolve()
    shared = (REPO.parent / 'shared').resolve()
    if work == shared or shared in work.parents:
        raise SystemExit(f'--work {work} is inside {shared}: variants never go there')
    work.mkdir(parents=True, exist_ok=True)
    steps, ds, split = args.steps, args.downscale, args.split
    extra = dict(kv.split('=', 1) for kv in args.set)
    extra = {k: json.loads(v) if v[:1] in '[{"0123456789-tf' else v for k, v in extra.items()}
    results: dict = dict(steps=steps, downscale=ds, scene=str(src), split=split, set=extra)

    def train_(scene: Path, name: str, options: dict, **kw) -> dict:
        return train(scene, work / 'runs' / name, steps, ds, {**options, **extra}, split=split,
                     **kw)

    clean_cache: dict = {}

    def clean_run() -> dict:
        if 'clean' not in clean_cache:
            clean_cache['clean'] = train_(src, 'clean', {})
        return clean_cache['clean']

    if args.protocol in ('pose', 'all'):
        info = make_pose_variant(src, work / 'pose_scene')
        # --align: every run also scores test-time aligned views; the runs without
        # refinement get it with lr 0 (their training is unchanged)
        fixed = {'camera_opt.enabled': True, 'camera_opt.lr': 0.0,
                 'camera_opt.eval_align': True} if args.align else {}
        refine = {'camera_opt.enabled': True, **({'camera_opt.eval_align': True}
                                                  if args.align else {})}
        tag = '_al' if args.align else ''
        c = train_(src, 'clean' + tag, fixed) if args.align else clean_run()
        p = train_(work / 'pose_scene', 'pose' + tag, fixed)
        pr = train_(work / 'pose_scene', 'pose_opt' + tag, refine, reference=src)
        cr = train_(src, 'clean_opt' + tag, refine)
        results['pose'] = dict(
            **info, psnr_clean=c['psnr'], psnr_perturbed=p['psnr'],
            psnr_perturbed_refined=pr['psnr'], psnr_clean_refined=cr['psnr'],
            recovered_fraction=recovery(c['psnr'], p['psnr'], pr['psnr']),
            clean_cost_db=c['psnr'] - cr['psnr'],
            pose_error=pr['pose_error'])
        if args.align:
            a = {k: r['psnr_aligned'] for k, r in (('clean', c), ('perturbed', p),
                                                  ('perturbed_refined', pr),
                                                  ('clean_refined', cr))}
            results['pose'].update(
                {f'psnr_aligned_{k}': v for k, v in a.items()},
                recovered_fraction_aligned=recovery(a['clean'], a['perturbed'],
                                                    a['perturbed_refined']),
                clean_cost_db_aligned=a['clean'] - a['clean_refined'])
    if args.protocol in ('appearance', 'all'):
        info = make_appearance_variant(src, work / 'appearance_scene')
        c = clean_run()
        g = train_(work / 'appearance_scene', 'gains', {})
        ga = train_(work / 'appearance_scene', 'gains_app', {'appearance.enabled': True})
        results['appearance'] = dict(**info, psnr_clean=c['psnr'], psnr_gains=g['psnr'],
                                     psnr_gains_appearance=ga['psnr'],
                                     recovered_fraction=recovery(c['psnr'], g['psnr'],
                                                                 ga['psnr']))
    if args.protocol in ('mask', 'all'):
        info = make_mask_variant(src, work / 'mask_scene')
        c = clean_run()
        pt = train_(work / 'mask_scene', 'painted', {})
        pm = train_(work / 'mask_scene', 'painted_masks', {'data.masks_dir': 'masks'})
        results['mask'] = dict(**info, psnr_clean=c['psnr'], psnr_painted=pt['psnr'],
                               psnr_painted_masked=pm['psnr'],
                               masked_minus_clean_db=pm['psnr'] - c['psnr'])
    if args.protocol in ('depth', 'all'):
        results['depth'] = {}
        for scene in [src] + [Path(s).resolve() for s in args.depth_scenes]:
            points = sparse_points_of(scene, args.triangulated)
            base = clean_run() if scene == src else train_(scene, f'{scene.name}_plain', points)
            dl = train_(scene, f'{scene.name}_depth', {**points, 'depth_loss.enabled': True})
            results['depth'][scene.name] = dict(psnr=base['psnr'], psnr_depth=dl['psnr'],
                                                delta_db=dl['psnr'] - base['psnr'], **points)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('protocol', choices=['pose', 'appearance', 'mask', 'depth', 'all'])
    parser.add_argument('--steps', type=int, required=True, help='training steps per run')
    parser.add_argument('--downscale', type=float, default=4)
    parser.add_argument('--scene', default=str(REPO.parent / 'shared' / 'data' / 'cup'))
    parser.add_argument('--depth-scenes', nargs='*', default=[],
                        help='more scenes for the depth protocol (COLMAP ones are trained)')
    parser.add_argument('--triangulated', default=None,
                        help='where the known-pose triangulation of a transforms.json depth scene '
                             'goes (default: the nerfreg cache; an existing one is reused)')
    parser.add_argument('--split', choices=['test', 'val'], default='test',
                        help="score on 'val' to tune settings, 'test' to report")
    parser.add_argument('--align', action='store_true',
                        help='pose protocol: also score test-time aligned views '
                             '(camera_opt.eval_align; psnr_aligned)')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='config options for every run, e.g. camera_opt.lr=3e-3')
    parser.add_argument('--work', required=True, help='folder for the variants and runs')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = run(args)
    text = json.dumps(results, indent=2)
    (Path(args.work) / 'results.json').write_text(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
