"""Pick the compute device from config: ``auto`` means CUDA when available."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device | None = 'auto') -> torch.device:
    """Return the torch device for ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:N'``."""
    if isinstance(name, torch.device):
        return name
    name = (name or 'auto').lower()
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={name!r} was requested but CUDA is not available in this torch build "
            f"({torch.__version__}). Use device='cpu' or device='auto'.")
    if name != 'cpu' and not name.startswith('cuda'):
        raise ValueError(f"device={name!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'.")
    return torch.device(name)
