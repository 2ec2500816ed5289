"""``SCENE/report.json``: what was given, what registered, and how long each stage took."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..utils.fileio import atomic_write_text
from .errors import import_pycolmap


def model_summary(model_dir: Path, names: list[str]) -> dict[str, Any]:
    """Registration and quality figures of the COLMAP model in ``model_dir``."""
    pycolmap = import_pycolmap()
    rec = pycolmap.Reconstruction(str(model_dir))
    registered = {rec.image(i).name for i in rec.reg_image_ids()}
    return dict(
        images_registered=len(registered),
        not_registered=[n for n in names if n not in registered],
        points=rec.num_points3D(),
        mean_reprojection_error_px=round(float(rec.compute_mean_reprojection_error()), 4),
        mean_track_length=round(float(rec.compute_mean_track_length()), 3),
        mean_observations_per_image=round(
            float(rec.compute_mean_observations_per_reg_image()), 1),
    )


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(report, indent=2) + '\n')


def format_summary(report: dict[str, Any]) -> str:
    """A few human-readable lines of a report."""
    lines = [f"registered {report.get('images_registered', 0)} of "
             f"{report['images_given']} images, {report.get('points', 0)} points, "
             f"mean reprojection error {report.get('mean_reprojection_error_px', float('nan')):.3f}"
             f" px, mean track length {report.get('mean_track_length', float('nan')):.2f}"]
    missing = report.get('not_registered') or []
    if missing:
        shown = ', '.join(missing[:10]) + (' ...' if len(missing) > 10 else '')
        lines.append(f'not registered ({len(missing)}): {shown}')
    times = ', '.join(f'{k} {v["seconds"]:.1f} s' + (' (reused)' if v.get('reused') else '')
                      for k, v in report.get('stages', {}).items())
    lines.append(f'time per stage: {times}')
    return '\n'.join(lines)
