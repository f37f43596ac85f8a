"""The runservice role: runs, their task DAG scheduling onto executors, logs and archives.

``logic`` holds the storage independent core (pure functions on ``agola.types.runservice``);
the role, its API and its loops are built on top of it.
"""
