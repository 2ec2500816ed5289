# COLMAP scene (the "cup" photos beside the repo). Pipeline keys: batch_size, image_device,
# shuffle; the rest builds ColmapDataset. Paths are relative to the working directory.
data = dict(
    type='ColmapDataset',
    data_root='../shared/data/cup',
    images_dir='images',
    sparse_dir='sparse/0',
    downscale=1,
    holdout_every=8,
    background='black',
    batch_size=1,
    image_device='cpu',
    shuffle=True,
)
