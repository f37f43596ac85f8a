// examples/matrix: Jsonnet generates one test task per version, and a report task that waits
// for all of them. Add a version to the list and the pipeline grows by one task.
local versions = ['3.10', '3.11', '3.12'];

local task(name, command, depends=[]) = {
  name: name,
  runtime: { containers: [{ image: 'busybox' }] },
  depends: depends,
  steps: [{ type: 'run', name: name, command: command }],
};

function(ctx) {
  runs: [{
    name: 'matrix',
    tasks: [
      task('test-' + v, 'echo "testing against version %s on %s"' % [v, ctx.ref])
      for v in versions
    ] + [
      task('report', 'echo "all %d versions passed"' % std.length(versions),
           ['test-' + v for v in versions]),
    ],
  }],
}
