"""`python -m snnspec ...`, and `torchrun --nproc_per_node=N -m snnspec train ...` for DDP."""

from .cli import main

if __name__ == "__main__":
    main()
