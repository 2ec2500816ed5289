"""Bad input fails at construction with a DatasetError naming the file and the problem."""

from __future__ import annotations

import shutil
import struct

import cv2
import numpy as np
import pytest
from test_datasets_colmap import make_scene  # tests/ is on sys.path (rootdir)

from nerfreg.datasets import ColmapDataset, DatasetError, NGPDataset
from nerfreg.datasets.colmap_io import read_model, write_model
from nerfreg.datasets.image_io import read_image
from nerfreg.registry import DATASETS


@pytest.mark.parametrize('kind', ['ColmapDataset', 'NGPDataset', 'BlenderDataset'])
def test_missing_data_root(tmp_path, kind):
    with pytest.raises(DatasetError, match=f'{kind}: data_root .*nope does not exist'):
        DATASETS.build(dict(type=kind, data_root=str(tmp_path / 'nope')))
    assert issubclass(DatasetError, ValueError)


def test_missing_sparse_model(tmp_path):
    make_scene(tmp_path, n=2)
    shutil.rmtree(tmp_path / 'sparse')
    with pytest.raises(DatasetError, match=r'sparse/0 does not exist'):
        ColmapDataset(tmp_path)
    (tmp_path / 'sparse' / '0').mkdir(parents=True)
    with pytest.raises(DatasetError, match='no COLMAP model'):
        ColmapDataset(tmp_path)


def test_truncated_model_file(tmp_path):
    make_scene(tmp_path, n=3)
    path = tmp_path / 'sparse' / '0' / 'images.bin'
    path.write_bytes(path.read_bytes()[:150])
    with pytest.raises(DatasetError, match=r'images\.bin: truncated'):
        ColmapDataset(tmp_path)


def test_zero_registered_images(tmp_path):
    make_scene(tmp_path, n=2)
    cams, _, pts = read_model(tmp_path / 'sparse' / '0')
    write_model(cams, {}, pts, tmp_path / 'sparse' / '0')
    with pytest.raises(DatasetError, match='zero registered images'):
        ColmapDataset(tmp_path)


def test_corrupt_and_truncated_images(tmp_path):
    make_scene(tmp_path, n=3, names=['a.jpg', 'b.jpg', 'c.png'])
    good = read_image(tmp_path / 'images' / 'a.jpg')[0]
    assert good.shape == (48, 64, 3)
    data = (tmp_path / 'images' / 'b.jpg').read_bytes()
    (tmp_path / 'images' / 'b.jpg').write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r'b\.jpg: truncated or corrupt JPEG'):
        ColmapDataset(tmp_path)
    (tmp_path / 'images' / 'b.jpg').write_bytes(data)
    (tmp_path / 'images' / 'c.png').write_bytes(b'not a png at all')
    with pytest.raises(DatasetError, match=r'c\.png: cannot decode'):
        ColmapDataset(tmp_path)


def test_aspect_mismatch_between_model_and_image(tmp_path):
    make_scene(tmp_path, n=2, sizes=((64, 48),))
    cv2.imwrite(str(tmp_path / 'images' / '1.png'), np.zeros((64, 48, 3), np.uint8))  # rotated
    with pytest.raises(DatasetError, match=r'1\.png: image is 48x64 but .*says 64x48: the aspect'):
        ColmapDataset(tmp_path)


def test_ngp_no_root_json(tmp_path):
    with pytest.raises(DatasetError, match=r'transforms\.json: file not found'):
        NGPDataset(tmp_path)


def _jpeg_with_orientation(img: np.ndarray, orientation: int) -> bytes:
    """JPEG bytes with a minimal EXIF APP1 segment holding only the orientation tag."""
    jpg = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    tiff = b'II*\x00' + struct.pack('<I', 8) + struct.pack('<H', 1)
    tiff += struct.pack('<HHIHH', 0x0112, 3, 1, orientation, 0) + struct.pack('<I', 0)
    payload = b'Exif\x00\x00' + tiff
    app1 = b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload
    return jpg[:2] + app1 + jpg[2:]


def test_jpeg_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # white band on the left
    path = tmp_path / 'rot.jpg'
    path.write_bytes(_jpeg_with_orientation(img, 6))  # 6: rotate 90 degrees clockwise to view
    rgb, alpha = read_image(path)
    assert rgb.shape == (40, 20, 3) and alpha is None
    assert rgb[:10, :, 0].mean() > 200 and rgb[-10:, :, 0].mean() < 50  # band now on top
