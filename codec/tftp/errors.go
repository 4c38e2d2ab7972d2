package tftp

import (
	"errors"
	"strconv"
)

// Kind classifies why a packet could not be decoded. Compare with errors.Is
// against the Err* values below.
type Kind uint8

// Decode error kinds.
const (
	KindTruncated       Kind = iota + 1 // packet shorter than its fixed fields
	KindBadOpcode                       // opcode is not 1-6 or not the one expected
	KindNotTerminated                   // a string field has no terminating NUL
	KindTooLong                         // file name, mode or option longer than allowed
	KindEmptyFilename                   // RRQ/WRQ without a file name
	KindBadMode                         // mode is not netascii, octet or mail
	KindEmptyOptionName                 // option with an empty name
	KindDuplicateOption                 // the same option twice
	KindTooManyOptions                  // more unknown options than MaxExtraOptions
	KindBadOptionValue                  // a known option whose value is not a decimal number in range
	KindTrailingGarbage                 // bytes after the last field of a packet
)

var kindText = [...]string{
	KindTruncated:       "truncated packet",
	KindBadOpcode:       "unexpected opcode",
	KindNotTerminated:   "string not NUL-terminated",
	KindTooLong:         "field too long",
	KindEmptyFilename:   "empty file name",
	KindBadMode:         "unknown transfer mode",
	KindEmptyOptionName: "empty option name",
	KindDuplicateOption: "duplicate option",
	KindTooManyOptions:  "too many options",
	KindBadOptionValue:  "bad option value",
	KindTrailingGarbage: "trailing bytes after packet",
}

func (k Kind) String() string {
	if int(k) < len(kindText) && kindText[k] != "" {
		return kindText[k]
	}
	return "kind " + strconv.Itoa(int(k))
}

// Error implements error so that a Kind can be used as a sentinel:
// errors.Is(err, tftp.ErrTruncated).
func (k Kind) Error() string { return "tftp: " + k.String() }

// Sentinels for errors.Is.
var (
	ErrTruncated       error = KindTruncated
	ErrBadOpcode       error = KindBadOpcode
	ErrNotTerminated   error = KindNotTerminated
	ErrTooLong         error = KindTooLong
	ErrEmptyFilename   error = KindEmptyFilename
	ErrBadMode         error = KindBadMode
	ErrEmptyOptionName error = KindEmptyOptionName
	ErrDuplicateOption error = KindDuplicateOption
	ErrTooManyOptions  error = KindTooManyOptions
	ErrBadOptionValue  error = KindBadOptionValue
	ErrTrailingGarbage error = KindTrailingGarbage
)

// DecodeError says what was wrong with a packet and at which byte offset.
type DecodeError struct {
	Kind   Kind
	Offset int
}

func (e *DecodeError) Error() string {
	return "tftp: " + e.Kind.String() + " at offset " + strconv.Itoa(e.Offset)
}

// Is lets errors.Is match a DecodeError against its Kind sentinel.
func (e *DecodeError) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

func decodeErr(k Kind, off int) error { return &DecodeError{Kind: k, Offset: off} }

// fault is a DecodeError by value: the decoders pass these around so that
// a malformed packet costs no allocation until a caller asks for an error.
func fault(k Kind, off int) DecodeError { return DecodeError{Kind: k, Offset: off} }

func (e DecodeError) failed() bool { return e.Kind != 0 }

// err returns nil for the zero DecodeError, else a heap copy of e.
func (e DecodeError) err() error {
	if e.Kind == 0 {
		return nil
	}
	return &DecodeError{Kind: e.Kind, Offset: e.Offset}
}

// AsDecodeError returns the DecodeError inside err, if any.
func AsDecodeError(err error) (*DecodeError, bool) {
	var de *DecodeError
	ok := errors.As(err, &de)
	return de, ok
}
