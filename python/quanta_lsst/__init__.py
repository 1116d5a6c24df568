"""Quanta's thin Python side for the LSST middleware: the job driver run-quantum calls
(run_job.py) and the ctrl_bps plugin (bps.py: ``wmsServiceClass: quanta_lsst.bps.QuantaService``).
All planning and bookkeeping stay in Swift."""
