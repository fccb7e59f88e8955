// Package rtpsim is the Voice emulator's plain-RTP endpoint: the "GVP" side
// of a simulated customer (and of the test agents). It sends 20 ms G.711
// frames from a Source, RFC 4733 digits on request, and analyses what it
// receives (level, dominant frequency, digits, packets and loss).
//
// G.711 and telephone-event framing come from appliance/media; the tone,
// prompt and analysis helpers are local because the shared package did not
// offer them when this was written.
package rtpsim
