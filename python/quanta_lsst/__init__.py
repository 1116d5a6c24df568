"""Quanta's thin Python side for the LSST middleware: the job driver run-quantum calls
(run_job.py) and, later, the ctrl_bps plugin. All planning and bookkeeping stay in Swift."""
