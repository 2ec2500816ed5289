# instant-ngp transforms.json scene (the "fox" photos beside the repo; distortion is undone).
data = dict(
    type='NGPDataset',
    data_root='../shared/data/fox',
    transforms='transforms.json',
    downscale=4,
    holdout_every=8,
    background='white',
    batch_size=1,
    image_device='cpu',
    shuffle=True,
)
