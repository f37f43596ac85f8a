# Errors in an evaluated document have a path but no line.
# error: runs[0].tasks[0] | task "t": runtime is not defined
# error: runs[0].tasks[1].depends[0] | run task "x" needed by task "u" doesn't exist
{ runs: [{ name: 'r', tasks: [{ name: 't' }, { name: 'u', runtime: { containers: [{ image: 'a' }] }, depends: ['x'] }] }] }
