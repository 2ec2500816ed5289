"""Frame rate of the viewer's render path while the camera moves, against full resolution.

Drives what a browser triggers, without the browser: for each frame of a camera orbit,
``SceneSource.render`` (model forward + configured renderer) and the JPEG encoding that
viser applies to every frame. "moving" frames take the size the viewer's
``MovingResolution`` controller picks for ``--fps``; "full" frames are rendered at
``--width x --height``. Both run interleaved, frame by frame, in one process.

Scene: ``--ply`` (a trained 3DGS PLY), else ``--gaussians`` synthetic Gaussians on the
surfaces of a few spheres (opaque, k-NN sized, SH degree 3: a stand-in for a trained scene).

    python benchmarks/bench_viewer.py --gaussians 100000 --frames 40
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfreg.viewer.camera import ViewPose  # noqa: E402
from nerfreg.viewer.render import SceneSource, ViewSettings  # noqa: E402
from nerfreg.viewer.render_loop import MovingResolution  # noqa: E402


def synthetic_scene(n: int, seed: int = 0) -> torch.nn.Module:
    from nerfreg.models.gaussian_splatting import GaussianSplatting
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.2, 0.3], [-0.8, -0.1, 0.4],
                            [0.1, -0.7, -0.5]])
    radii = torch.tensor([0.6, 0.35, 0.4, 0.3])
    which = torch.randint(0, len(centers), (n,), generator=g)
    dirs = torch.randn(n, 3, generator=g)
    points = centers[which] + radii[which, None] * dirs / dirs.norm(dim=1, keepdim=True)
    model = GaussianSplatting(sh_degree=3, init_opacity=0.9)
    model.init_from_points(points, torch.rand(n, 3, generator=g))
    with torch.no_grad():
        model.params['shN'].normal_(0.0, 0.05, generator=g)
    return model


def orbit_pose(i: int, n: int, aspect: float, radius: float = 3.2) -> ViewPose:
    from nerfreg.cameras import rotmat_to_qvec
    from nerfreg.cameras.paths import look_at
    angle = 2 * math.pi * i / n
    eye = np.array([radius * math.sin(angle), -0.8, -radius * math.cos(angle)])
    rot, _ = look_at(eye[None], np.zeros((1, 3)), np.array([0.0, -1.0, 0.0]))
    return ViewPose(tuple(rotmat_to_qvec(rot[0].T).tolist()), tuple(eye.tolist()), 0.9, aspect)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--gaussians', type=int, default=100_000)
    parser.add_argument('--ply', help='a trained 3DGS PLY instead of the synthetic scene')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--fps', type=float, default=10.0, help='target while moving')
    parser.add_argument('--frames', type=int, default=40, help='frames of each kind')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--backend', default='auto')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    import cv2

    from nerfreg.renderers.gaussian_renderer import GaussianSplatRenderer
    torch.set_num_threads(args.threads)
    if args.ply:
        from nerfreg.viewer.loader import load_scene
        scene = load_scene(None, args.ply, 'cpu')
        model, what = scene.model, f'{args.ply} ({scene.model.num_gaussians:,} Gaussians)'
    else:
        model, what = synthetic_scene(args.gaussians), f'synthetic, {args.gaussians:,} Gaussians'
    source = SceneSource(model, GaussianSplatRenderer(backend=args.backend))
    aspect = args.width / args.height
    full_side = max(args.width, args.height)
    settings = ViewSettings(max_side=full_side)
    ctl = MovingResolution(args.fps)
    times: dict[str, list[float]] = {'moving': [], 'full': []}
    sides: list[int] = []
    total = args.warmup + args.frames
    for i in range(total):
        pose = orbit_pose(i, total, aspect)
        for kind in ('moving', 'full'):
            side = ctl.side(full_side, aspect) if kind == 'moving' else full_side
            w, h = pose.image_size(side)
            t0 = time.perf_counter()
            image, _, _ = source.render(pose, w, h, settings)
            ok, _jpeg = cv2.imencode('.jpg', image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            dt = time.perf_counter() - t0
            if kind == 'moving':
                ctl.update(w * h, dt)
            if i >= args.warmup:
                times[kind].append(dt)
                if kind == 'moving':
                    sides.append(side)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = dict(
        scene=what, size=f'{args.width}x{args.height}', target_fps=args.fps, frames=args.frames,
        moving_fps=round(1.0 / med['moving'], 2), moving_median_side=int(statistics.median(sides)),
        full_fps=round(1.0 / med['full'], 2), speedup=round(med['full'] / med['moving'], 2),
        moving_ms=round(1000 * med['moving'], 1), full_ms=round(1000 * med['full'], 1))
    print(json.dumps(result))


if __name__ == '__main__':
    main()
