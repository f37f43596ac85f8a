# A Jsonnet syntax error.
# error: - @3:11 | failed to execute jsonnet: STATIC ERROR
{ runs: [ }
