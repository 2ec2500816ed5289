"""The structure-from-motion stages, each one pycolmap call: features, matches, mapping,
undistortion. Image names are relative to the image folder; positions in the database
and in the models are in the original image's pixels (``max_size`` only shrinks the copy
SIFT sees, and COLMAP scales the keypoints back).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from .errors import ProcessError, import_pycolmap

CAMERA_MODELS = ('SIMPLE_RADIAL', 'OPENCV', 'RADIAL', 'SIMPLE_PINHOLE', 'PINHOLE')
MATCHERS = ('exhaustive', 'sequential', 'vocab')
#: Matchers that need no extra file (what ``triangulate`` offers).
PLAIN_MATCHERS = ('exhaustive', 'sequential')
#: Two views share enough of the scene when at least this many matches pass verification.
MIN_INLIERS = 15


def extract_features(db: Path, image_dir: Path, names: list[str], camera_model: str,
                     single_camera: bool, max_size: int | None, num_threads: int) -> None:
    """SIFT features of ``names`` into a new database ``db``."""
    pycolmap = import_pycolmap()
    if db.exists():
        db.unlink()
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = num_threads
    if max_size:
        extraction.max_image_size = int(max_size)
    mode = pycolmap.CameraMode.SINGLE if single_camera else pycolmap.CameraMode.PER_IMAGE
    pycolmap.extract_features(db, image_dir, image_names=names, camera_mode=mode,
                              reader_options=reader, extraction_options=extraction,
                              device=pycolmap.Device.cpu)
    with pycolmap.Database.open(db) as database:
        found = {im.name for im in database.read_all_images()}
    missing = [n for n in names if n not in found]
    if missing:
        raise ProcessError(f'COLMAP could not read {len(missing)} image(s): {missing[:10]}; '
                           'delete or re-export them and run the command again.')


def match_features(db: Path, matcher: str, num_threads: int,
                   vocab_tree: Path | None = None) -> None:
    """Match and geometrically verify image pairs (drops earlier matches)."""
    pycolmap = import_pycolmap()
    pycolmap.set_random_seed(0)  # RANSAC and mapping draw from it: same input, same model
    with pycolmap.Database.open(db) as database:
        database.clear_matches()
        database.clear_two_view_geometries()
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = num_threads
    dev = pycolmap.Device.cpu
    if matcher == 'exhaustive':
        pycolmap.match_exhaustive(db, matching_options=options, device=dev)
    elif matcher == 'sequential':
        pairing = pycolmap.SequentialPairingOptions()
        if vocab_tree is not None:  # also close loops when the camera comes back
            pairing.loop_detection = True
            pairing.vocab_tree_path = str(vocab_tree)
        pycolmap.match_sequential(db, matching_options=options, pairing_options=pairing,
                                  device=dev)
    elif matcher == 'vocab':
        pairing = pycolmap.VocabTreePairingOptions()
        pairing.vocab_tree_path = str(vocab_tree)
        pycolmap.match_vocabtree(db, matching_options=options, pairing_options=pairing,
                                 device=dev)
    else:
        raise ProcessError(f'unknown matcher {matcher!r}; choose one of {", ".join(MATCHERS)}')


def check_overlap(db: Path) -> dict[str, int]:
    """``{image name: number of views it overlaps}``; raise when no pair overlaps."""
    pycolmap = import_pycolmap()
    with pycolmap.Database.open(db) as database:
        names = {im.image_id: im.name for im in database.read_all_images()}
        pair_ids, geometries = database.read_two_view_geometries()
    links = dict.fromkeys(names.values(), 0)
    for pair_id, geom in zip(pair_ids, geometries):
        if len(geom.inlier_matches) >= MIN_INLIERS:
            for image_id in pycolmap.pair_id_to_image_pair(pair_id):
                links[names[image_id]] += 1
    if not any(links.values()):
        raise ProcessError(
            f'not enough overlap: no two of the {len(names)} images share {MIN_INLIERS} '
            'verified feature matches, so no pose can be recovered. Take photos with 60-80% '
            'overlap between neighbours, of a textured scene, and avoid motion blur; with a '
            'video, move slower or pass more --num-frames; try --matcher exhaustive.')
    return links


def map_images(db: Path, image_dir: Path, out_dir: Path, num_threads: int,
               on_image: Callable[[], None] | None = None) -> tuple[int, list[int]]:
    """Incremental mapping into ``out_dir/<k>``; return (index of the largest model,
    registered image counts of every model)."""
    pycolmap = import_pycolmap()
    pycolmap.set_random_seed(0)  # RANSAC and mapping draw from it: same input, same model
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = num_threads
    options.random_seed = 0
    options.min_model_size = 3
    models = pycolmap.incremental_mapping(db, image_dir, out_dir, options=options,
                                          next_image_callback=on_image)
    if not models:
        raise ProcessError(
            'not enough overlap: incremental mapping could not start a model from any image '
            'pair (too few matches, or too little parallax between views). Take photos from '
            'more varied viewpoints with 60-80% overlap, or try --matcher exhaustive.')
    counts = {k: rec.num_reg_images() for k, rec in models.items()}
    best = max(counts, key=lambda k: (counts[k], -k))
    return best, [counts[k] for k in sorted(counts)]


def undistort(model_dir: Path, image_dir: Path, scene: Path, num_threads: int) -> None:
    """Undistort the originals with the model's cameras into ``scene/images`` and a PINHOLE
    model in ``scene/sparse/0`` (via ``scene/colmap/undistorted``)."""
    pycolmap = import_pycolmap()
    tmp = scene / 'colmap' / 'undistorted'
    if tmp.exists():
        shutil.rmtree(tmp)
    pycolmap.undistort_images(tmp, model_dir, image_dir, output_type='COLMAP',
                              num_threads=num_threads)
    for old in (scene / 'images', scene / 'sparse'):
        if old.exists():
            shutil.rmtree(old)
    (scene / 'sparse').mkdir()
    shutil.move(str(tmp / 'images'), str(scene / 'images'))
    shutil.move(str(tmp / 'sparse'), str(scene / 'sparse' / '0'))
    shutil.rmtree(tmp)
