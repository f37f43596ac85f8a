# Jsonnet can build different pipelines per ref type.
# ctx: tag=v2.0.0
# runs: release
function(ctx)
  local release = ctx.ref_type == 'tag';
  {
    runs: [{
      name: if release then 'release' else 'ci',
      tasks: [{ name: 'publish-' + ctx.tag, runtime: { containers: [{ image: 'busybox' }] } }],
    }],
  }
