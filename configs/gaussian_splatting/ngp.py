# 3D Gaussian Splatting on an instant-ngp transforms.json scene (default: ../shared/data/fox).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/ngp.py',
    '../_base_/models/gaussian_splatting.py',
    '../_base_/schedules/gs_30k.py',
]
model = dict(background='white')
# validation images to the visualizer; at the end: point_cloud.ply + test renders/metrics
custom_hooks = [dict(type='VisualizationHook', max_images=4), dict(type='TestOutputHook'),
                dict(type='FinalExportHook')]
