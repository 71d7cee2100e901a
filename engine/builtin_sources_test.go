package engine

// The intake in these tests mounts the built-in sources.
import _ "github.com/livehook/livehook/sources/all"
