# Imports are refused: a pipeline is one self-contained file.
# error: - | imports are not allowed in pipeline files
local lib = import 'lib.libsonnet';
lib
