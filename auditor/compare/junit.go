package compare

import (
	"encoding/xml"
	"fmt"
	"io"
)

// The JUnit XML elements that CI services read (Jenkins, GitLab, GitHub
// Actions reporters): testsuites > testsuite > testcase > failure | error.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Time     string      `xml:"time,attr"`
		Cases    []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr"`
		Failure   *junitProblem `xml:"failure"`
		Error     *junitProblem `xml:"error"`
	}
	junitProblem struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
)

// JUnitClassname is the classname of the gates' test cases.
const JUnitClassname = "marginaudit.diff"

// WriteJUnit writes the verdicts of r.Gates as JUnit XML: one test suite
// named after the two models, one test case per gate (named as the gate is
// written), a <failure> with the measured value when the gate tripped and
// an <error> when it could not be measured. Times are 0: the gates take no
// measurable time.
func WriteJUnit(w io.Writer, r *Result) error {
	suite := junitSuite{
		Name:  fmt.Sprintf("marginaudit diff %s:%s vs %s:%s", r.Baseline.Dir, r.Baseline.Checkpoint, r.Candidate.Dir, r.Candidate.Checkpoint),
		Tests: len(r.Gates), Time: "0", Cases: []junitCase{},
	}
	for _, g := range r.Gates {
		c := junitCase{Name: g.Gate, Classname: JUnitClassname, Time: "0"}
		switch g.Status {
		case Fail:
			suite.Failures++
			c.Failure = &junitProblem{Message: g.Message, Type: "gate", Text: g.Message}
		case Error:
			suite.Errors++
			c.Error = &junitProblem{Message: g.Message, Type: "unmeasured", Text: g.Message}
		}
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{Name: "marginaudit diff", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Time: "0", Suites: []junitSuite{suite}}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("compare: encoding JUnit XML: %w", err)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("compare: writing JUnit XML: %w", err)
	}
	if _, err := w.Write(append(out, '\n')); err != nil {
		return fmt.Errorf("compare: writing JUnit XML: %w", err)
	}
	return nil
}
