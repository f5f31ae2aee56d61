"""Timing shared by the PyTorch sides of `npm run bench` (torch_train.py, torch_lora.py)."""
import time


def steps_per_second(step, steps):
    """Run step() once to warm up (allocator, thread pool), then `steps` times; timed steps per second."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)
