// Package wirepb holds the protobuf code generated from wire.proto. Use it
// only through internal/wire, which adds versions, limits and validation.
package wirepb
