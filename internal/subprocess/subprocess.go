// Package subprocess runs a program once under supervision, for the actions
// that hand a delivery to a local process (exec, plugins): in a process
// group of its own, with exactly the environment it is given, its input
// written to its stdin, its output kept within bounds, and the whole group
// killed at the timeout, when the caller gives up, and in any case once the
// program has exited, so nothing it started outlives the run.
package subprocess

import (
	"context"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// pipeGrace bounds the wait for output once the program has exited and its
// group was killed: a process that left the group (setsid) may still hold
// the pipes open, and is not waited for.
const pipeGrace = time.Second

// Command is one run of a program.
type Command struct {
	// Path is the program. Without a path separator it is looked up in the
	// daemon's PATH, as exec.Command does.
	Path string
	Args []string // the arguments after the program's name
	Dir  string   // the working directory; "" is the daemon's
	// Env is the program's whole environment, "NAME=value" each. Nothing is
	// inherited: the daemon's environment holds its secrets.
	Env     []string
	Stdin   []byte        // written to the program's stdin, which is then closed
	Timeout time.Duration // from the start; 0 means no limit but the context's

	// Stdout and Stderr keep what the program writes; both are required.
	Stdout, Stderr Output
	// StopWhenStdoutFull kills the group as soon as Stdout drops a byte:
	// when stdout is the program's answer, a cut one is worthless and the
	// rest need not be read.
	StopWhenStdoutFull bool
}

// Output keeps a bounded part of a stream. Writes must never fail: a
// program must not block or die because less of its output is kept.
type Output interface {
	io.Writer
	// Full reports whether bytes were dropped.
	Full() bool
}

// Kill says why the group was killed before the program ended.
type Kill int

const (
	NotKilled  Kill = iota
	Timeout         // the command's Timeout passed
	Cancelled       // the caller's context ended
	StdoutFull      // Stdout dropped bytes and StopWhenStdoutFull was set
)

// Result is how a run ended.
type Result struct {
	Exit string // as the system says it: "exit status 2", "signal: killed"
	Code int    // the exit status; -1 when a signal ended the program
	// Killed is the first reason the group was killed while the program ran.
	// A program that exited just as it was killed may still show a Code of
	// its own.
	Killed Kill
}

// Run runs c and waits for it and for its output. An error means the
// program did not start; it is the error from starting it, for the caller
// to classify (a missing program stays missing, a full process table may
// clear). A context that has ended already starts nothing and reports
// Cancelled.
func Run(ctx context.Context, c Command) (Result, error) {
	if ctx.Err() != nil {
		return Result{Exit: "not started", Code: -1, Killed: Cancelled}, nil
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return Result{}, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return Result{}, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return Result{}, err
	}
	// Our ends are closed when the run is over; closing one twice is
	// harmless.
	defer closeAll(inW, outR, errR)

	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir = c.Dir
	// A nil Env would inherit the daemon's environment.
	cmd.Env = append([]string{}, c.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	ownGroup(cmd)
	err = cmd.Start()
	// The child has its copies; ours would keep the pipes from closing.
	closeAll(inR, outW, errW)
	if err != nil {
		return Result{}, err
	}

	var killed atomic.Int32
	stop := func(why Kill) {
		if killed.CompareAndSwap(int32(NotKilled), int32(why)) {
			killGroup(cmd)
		}
	}
	var stdout io.Writer = c.Stdout
	if c.StopWhenStdoutFull {
		stdout = stopWhenFull{c.Stdout, func() { stop(StdoutFull) }}
	}
	// Copying ends when the pipes close, or when we close our ends.
	var pipes sync.WaitGroup
	pipes.Go(func() {
		_, _ = inW.Write(c.Stdin) // a program that does not read its input fails on its own
		inW.Close()
	})
	pipes.Go(func() { _, _ = io.Copy(stdout, outR) })
	pipes.Go(func() { _, _ = io.Copy(c.Stderr, errR) })

	var timer *time.Timer
	if c.Timeout > 0 {
		timer = time.AfterFunc(c.Timeout, func() { stop(Timeout) })
	}
	stopOnCancel := context.AfterFunc(ctx, func() { stop(Cancelled) })
	waitErr := cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	stopOnCancel()
	// Whatever the program left running in its group goes with it. While
	// the group has members its id, the leader's pid, is not reused.
	killGroup(cmd)

	done := make(chan struct{})
	go func() { pipes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(pipeGrace):
		closeAll(inW, outR, errR)
		<-done
	}

	r := Result{Code: -1, Killed: Kill(killed.Load())}
	if st := cmd.ProcessState; st != nil {
		r.Exit, r.Code = st.String(), st.ExitCode()
	} else {
		r.Exit = "wait: " + waitErr.Error() // the system lost the child: nothing to classify
	}
	return r, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// stopWhenFull calls stop once its Output has dropped a byte.
type stopWhenFull struct {
	Output
	stop func()
}

func (s stopWhenFull) Write(p []byte) (int, error) {
	n, err := s.Output.Write(p)
	if s.Full() {
		s.stop()
	}
	return n, err
}
