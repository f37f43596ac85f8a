"""The executor: runs executor tasks in pods and reports step results (spec §7).

Public surface (import from the modules; nothing is imported here, to keep start-up light):

* ``taskrunner``: ``TaskRunner`` (setup, steps, stop, timeout, live logs of one task). What to run
  is the runservice's wire type ``agola.types.runservice.ExecutorTaskSpecData``, decoded once by
  ``agola.roleclients.runservice``; the status it reports is ``ExecutorTaskStatus``.
* ``drivers.base``: the ``Driver``/``Pod`` interface; ``drivers.docker.DockerDriver`` and
  ``drivers.host.HostDriver`` (untrusted code runs with the executor's rights there).
* ``store``: ``ArchiveStore`` with ``LocalArchiveStore`` and ``RunserviceArchiveStore``.
* ``logs``: ``LogFile``/``TaskLogs`` and ``read_log`` (the executor API's log stream).
"""
