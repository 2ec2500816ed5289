# The instant-ngp `fox` capture beside the repo at downscale 4 (270x480 from 1080x1920), on
# white. `background` is also read by the configs that include this file
# (model = dict(background={{_base_.background}})).
_base_ = ['./ngp.py']
background = 'white'
data = dict(dataset=dict(data_root='../shared/data/fox', downscale=4, background=background))
