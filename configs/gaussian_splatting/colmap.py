# 3D Gaussian Splatting on a COLMAP scene (default: ../shared/data/cup), 3DGS recipe, 30k steps.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/colmap.py',
    '../_base_/models/gaussian_splatting.py',
    '../_base_/schedules/gs_30k.py',
]
# validation images to the visualizer; at the end: point_cloud.ply + test renders/metrics
custom_hooks = [dict(type='VisualizationHook', max_images=4), dict(type='TestOutputHook'),
                dict(type='FinalExportHook')]
