"""PoseC3D's RandomResizedCrop + Flip parameters: the one home of the random crop both sources draw (the heatmap
cache on the device, heatmap_augment.py; the keypoints before rendering, keypoint_augment.py)."""

AREA = (0.56, 1.0)  # PoseC3D's RandomResizedCrop(area_range=(0.56, 1.0)): fraction of the image's area
RATIO = (3 / 4, 4 / 3)  # aspect ratio range, drawn log-uniformly
MAX_ATTEMPTS = 10  # MMAction2's RandomResizedCrop.get_crop_bbox: candidates before the centred square
FLIP_PROB = 0.5  # Flip(flip_ratio=0.5)
