// A Jsonnet ||| block ends with a newline: one command in it is two lines for Agola's
// CountLines, so the step needs a name.
// error: runs[0].tasks[0].steps[0] | missing step name for step 0 (run) in task "t", required since command is more than one line
{
  runs: [{
    name: 'r',
    tasks: [{
      name: 't',
      runtime: { containers: [{ image: 'busybox' }] },
      steps: [{ type: 'run', command: |||
        echo one line
      ||| }],
    }],
  }],
}
