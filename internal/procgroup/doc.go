// Package procgroup is what lvss's command runners (the exec provider and
// the exec writer) share about the processes they start: each command
// leads a process group of its own, so that at its deadline the whole tree
// it started dies with one signal; a killed command that does not go away
// within KillGrace is abandoned, because then it sleeps in the kernel on a
// frozen filesystem and no wait helps; and the directories given to
// commands for temporary files must be on a memory filesystem, which no
// freeze can block.
//
// Linux only; elsewhere Supported is false and the functions do nothing.
package procgroup
