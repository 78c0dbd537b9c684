"""Running a profile on devices: the cells, one worker per device, the run loop, resume and A/B.

    cells.py          profile + devices -> cells, and shards of them
    execute.py        `run` and `run --resume`: the device workers in parallel, the run's store
    device_worker.py  one device's share: connect, lock, probe, place models, cool down, measure, retry
    ab.py             `ab`: variants A and B interleaved in rounds on one device, then gated
"""
