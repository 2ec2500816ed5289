# COLMAP scene (the "cup" photos beside the repo). `data` is the pipeline (its keys:
# batch_size, image_device, shuffle) and `dataset`, which builds ColmapDataset. Paths are
# relative to the working directory; `--cfg-options data.data_root=...` also works (dataset
# keys given at the top level of `data` override `data.dataset`).
data = dict(
    type='DataPipeline',
    batch_size=1,
    image_device='cpu',
    shuffle=True,
    dataset=dict(
        type='ColmapDataset',
        data_root='../shared/data/cup',
        images_dir='images',
        sparse_dir='sparse/0',
        downscale=1,
        holdout_every=8,  # test: every 8th view (3DGS "llffhold")
        val_every=8,  # val: every 8th of the other views, held out of training
        background='black',
    ),
)
