"""After training: multi-view evaluation, predict (files, folders, windows, videos), export (TorchScript,
ONNX), convert (MMAction2/PYSKL checkpoints) and pretrained weights."""
