"""The reality suite: the course's scenarios in the simulation and on real Linux TCP.

``python3 dev.py reality`` runs it (:mod:`reality.run`); reality/README.md explains it.
Modules: :mod:`~reality.scenarios` (application code and fault schedules, written once),
:mod:`~reality.simside` (in :class:`wssim.Simulation`), :mod:`~reality.netns`,
:mod:`~reality.agent` and :mod:`~reality.realside` (on Linux, between network namespaces),
:mod:`~reality.outcome`, :mod:`~reality.compare` and :mod:`~reality.fidelity` (what each
side saw, the comparison, docs/FIDELITY.md).
"""
