# The NeRF-synthetic `mic` scene beside the repo at downscale 2 (400x400 from 800x800), on
# white as the NeRF-synthetic protocol scores it. `background` is also read by the configs
# that include this file (model = dict(background={{_base_.background}})).
_base_ = ['./blender.py']
background = 'white'
data = dict(dataset=dict(data_root='../shared/data/mic', downscale=2, background=background))
