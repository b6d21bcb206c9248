"""Experiment kits: run an experiment on the simulation, measure it, report it.

- :mod:`~wssim.lab.diagnose`: one server, one client, faults; what each side saw and when.
- :mod:`~wssim.lab.detection`: how long a heartbeat takes to notice a fault, and its cost.
- :mod:`~wssim.lab.storm`: a reconnect storm after a server restart.
- :mod:`~wssim.lab.chaos`: seeded chaos schedules drawn from the fault catalogue.
- :mod:`~wssim.lab.scorecard`: scoring an application run on lost, duplicated and
  reordered messages, reconnect rates and resources left.

No figure is drawn here: :mod:`wssim.plot` draws what these return.
"""
