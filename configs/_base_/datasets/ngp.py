# instant-ngp transforms.json scene (the "fox" photos beside the repo; distortion is undone).
data = dict(
    type='DataPipeline',
    batch_size=1,
    image_device='cpu',
    shuffle=True,
    dataset=dict(
        type='NGPDataset',
        data_root='../shared/data/fox',
        transforms='transforms.json',
        downscale=4,
        holdout_every=8,  # test: every 8th view
        val_every=8,  # val: every 8th of the other views, held out of training
        background='white',
    ),
)
