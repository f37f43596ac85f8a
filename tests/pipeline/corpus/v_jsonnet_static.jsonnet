# A Jsonnet file that is a plain object (ctx is not used).
# levels: r: a=0 b=1 c=1
local task(name, deps=[]) = {
  name: name,
  runtime: { containers: [{ image: 'busybox' }] },
  steps: [{ type: 'run', command: 'echo ' + name }],
  depends: deps,
};
{
  runs: [
    { name: 'r', tasks: [task('a'), task('b', ['a']), task('c', ['a'])] },
  ],
}
