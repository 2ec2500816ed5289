# NeRF-synthetic ("Blender") scene: transforms_{train,val,test}.json with RGBA PNGs.
data = dict(
    type='DataPipeline',
    batch_size=1,
    image_device='cpu',
    shuffle=True,
    dataset=dict(
        type='BlenderDataset',
        data_root='data/nerf_synthetic/lego',
        downscale=1,
        background='white',
    ),
)
