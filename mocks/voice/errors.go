package voice

import "errors"

var (
	errNotRegistered = errors.New("agent DN is not registered")
	errBadState      = errors.New("state must be Ready, NotReady or AfterCallWork")
	errAgentBusy     = errors.New("agent is on a call")
	errNoRemoteCtl   = errors.New("endpoint does not allow remote call control for this event")
	errCallNotFound  = errors.New("call not found")
	errCallState     = errors.New("call is not in a state that allows this")
	errNotYours      = errors.New("call does not belong to this agent")
)
