# A Jsonnet top-level function receives ctx.
# ctx: branch=feature-x commit_sha=abc123
# runs: build-feature-x
# env: build-feature-x/t: REF_TYPE=branch,REF=refs/heads/feature-x,TAG=,PR=,SHA=abc123
function(ctx) {
  runs: [
    {
      name: 'build-' + ctx.branch,
      tasks: [{
        name: 't',
        runtime: { containers: [{ image: 'busybox' }] },
        environment: {
          REF_TYPE: ctx.ref_type,
          REF: ctx.ref,
          TAG: ctx.tag,
          PR: ctx.pull_request_id,
          SHA: ctx.commit_sha,
        },
      }],
    },
  ],
}
