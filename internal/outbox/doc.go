// Package outbox is how lvssd talks to a peer that may stop listening: a
// bounded queue of messages to one peer (a writer or a requester stream),
// drained by a goroutine of its own while it holds messages, where every
// message carries a deadline.
//
// A gRPC stream's Send has no deadline: when the peer stops reading (a
// stopped process, a receive loop that hangs), Send blocks once the
// transport's buffers are full, and whoever called it blocks with it. The
// rule lvssd follows instead is that no peer can delay anything beyond the
// deadline of the message sent to it. Put never blocks; the sender
// goroutine is the only one that can be stuck in Send, and a watchdog ends
// the peer's stream at the message's deadline, which makes that Send
// return. A full queue means the peer stopped reading long ago, and ends
// it at once.
//
// Ending is the owner's job (the end function given to New), because only
// the owner can make a blocked Send return: for a gRPC server stream, by
// returning from the handler.
package outbox
