# A Jsonnet runtime error, located in the source.
# error: - @4:16 | failed to execute jsonnet: RUNTIME ERROR: boom
function(ctx)
  if true then error 'boom' else {}
