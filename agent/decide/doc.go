// Package decide is the agent's pxe.Decider: the subnet election says
// whether this agent answers a client, Central says what the client boots
// (or, when Central cannot be reached in time, the cached decision set
// applied locally with the same rules, unless it is older than a staleness
// bound), and a client whose image this agent does not hold is handed to an
// agent that does. Every decision is reported as an event.
//
// decide must never import sockets, the packet engine or the TFTP server; it
// reaches Central, the election and the image cache through small
// interfaces defined here.
package decide
