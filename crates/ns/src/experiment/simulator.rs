//! The methods of the Simulator object (`$ns node`, `$ns duplex-link`,
//! `$ns make-lan`, ...): one function per method, and a dispatcher that
//! maps the method name to it, so each NS command has one place to read.

use super::queue::QueueType;
use super::{Arg, Experiment, FIRST_AGENT_PORT_BASE, GroupData, NodeData, ObjKind};
use crate::error::{Locate, NsError, NsErrorKind, NsResult, usage};
use crate::{list, units};

/// One `$ns METHOD ARGS...` call: the simulator's name (for usage
/// messages), the arguments and the line.
#[derive(Clone, Copy)]
pub(super) struct SimCall<'a> {
    ns: &'a str,
    args: &'a [Arg],
    values: &'a [&'a str],
    line: u32,
}

impl Experiment {
    pub(super) fn simulator_method(
        &mut self,
        method: &str,
        args: &[Arg],
        line: u32,
    ) -> NsResult<String> {
        let ns = self.simulator_name().to_string();
        let values: Vec<&str> = args.iter().map(|a| a.value.as_str()).collect();
        let call = SimCall {
            ns: &ns,
            args,
            values: &values,
            line,
        };
        match method {
            "node" => self.ns_node(&call),
            "duplex-link" => self.ns_duplex_link(&call),
            "make-lan" => self.ns_make_lan(&call),
            "link" => self.ns_link(&call),
            "rtproto" => self.ns_rtproto(&call),
            "run" => self.ns_run(&call),
            "at" => self.ns_at(args, line),
            "attach-agent" => self.ns_attach_agent(&call),
            "connect" => self.ns_connect(&call),
            "event-group" => self.ns_event_group(&call),
            other => Err(NsError::at(
                line,
                NsErrorKind::Unsupported(format!(
                    "Simulator method '{other}' (supported: node, duplex-link, make-lan, link, rtproto, at, attach-agent, connect, event-group, run)"
                )),
            )),
        }
    }

    /// `$ns node ...`.
    fn ns_node(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall { ns, args, line, .. } = *call;
        if !args.is_empty() {
            return Err(NsError::at(line, usage(&format!("${ns} node"))));
        }
        let id = self
            .create(ObjKind::Node(self.nodes.len()), line)
            .at_line(line)?;
        self.nodes.push(NodeData {
            obj: id,
            os: String::new(),
            hardware: String::new(),
            ports: Vec::new(),
            whole_node_ip: None,
            last_agent_port: FIRST_AGENT_PORT_BASE,
        });
        Ok(self.name_of(id).to_string())
    }

    /// `$ns duplex-link ...`.
    fn ns_duplex_link(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall {
            ns, values, line, ..
        } = *call;
        let [a, b, bw, delay, queue] = values else {
            return Err(NsError::at(
                line,
                usage(&format!(
                    "${ns} duplex-link NODE1 NODE2 BANDWIDTH DELAY DropTail|RED|GRED"
                )),
            ));
        };
        let a = self.node_arg(a).at_line(line)?;
        let b = self.node_arg(b).at_line(line)?;
        if a == b {
            return Err(NsError::at(
                line,
                NsErrorKind::Invalid("a duplex link needs two different nodes".into()),
            ));
        }
        let bandwidth = units::parse_bw(bw).at_line(line)?;
        let delay = units::parse_delay(delay).at_line(line)?;
        let queue_type = QueueType::from_link_argument(queue).at_line(line)?;
        let id = self.add_lanlink(false, &[a, b], bandwidth, delay, queue_type, line)?;
        Ok(self.name_of(id).to_string())
    }

    /// `$ns make-lan ...`.
    fn ns_make_lan(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall {
            ns, values, line, ..
        } = *call;
        // ns-2's optional LL/queue/MAC/channel/physical-layer types
        // may follow the delay; see `QueueType::from_make_lan_arguments`.
        if !(3..=8).contains(&values.len()) {
            return Err(NsError::at(
                line,
                usage(&format!("${ns} make-lan \"NODE NODE ...\" BANDWIDTH DELAY")),
            ));
        }
        let members = list::split(values[0]).map_err(|m| {
            NsError::at(
                line,
                NsErrorKind::Syntax(format!("the LAN's node list: {m}")),
            )
        })?;
        if members.is_empty() {
            return Err(NsError::at(
                line,
                NsErrorKind::Invalid("a LAN needs at least one node".into()),
            ));
        }
        let mut nodes = Vec::with_capacity(members.len());
        for member in &members {
            let n = self.node_arg(member).at_line(line)?;
            if nodes.contains(&n) {
                return Err(NsError::at(
                    line,
                    NsErrorKind::Invalid(format!("node '{member}' is listed twice in the LAN")),
                ));
            }
            nodes.push(n);
        }
        let bandwidth = units::parse_bw(values[1]).at_line(line)?;
        let delay = units::parse_delay(values[2]).at_line(line)?;
        let queue_type =
            QueueType::from_make_lan_arguments(values.get(3..).unwrap_or(&[])).at_line(line)?;
        let id = self.add_lanlink(true, &nodes, bandwidth, delay, queue_type, line)?;
        Ok(self.name_of(id).to_string())
    }

    /// `$ns link ...`.
    fn ns_link(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall {
            ns, values, line, ..
        } = *call;
        let [a, b] = values else {
            return Err(NsError::at(line, usage(&format!("${ns} link NODE1 NODE2"))));
        };
        let a = self.node_arg(a).at_line(line)?;
        let b = self.node_arg(b).at_line(line)?;
        let queue = self.find_link_queue(a, b).ok_or_else(|| {
            NsError::at(
                line,
                NsErrorKind::Invalid(format!(
                    "there is no duplex link between '{}' and '{}'",
                    self.nodes.get(a).map_or("?", |n| self.name_of(n.obj)),
                    self.nodes.get(b).map_or("?", |n| self.name_of(n.obj)),
                )),
            )
        })?;
        let id = self
            .create(ObjKind::SimplexLink(queue), line)
            .at_line(line)?;
        Ok(self.name_of(id).to_string())
    }

    /// `$ns rtproto ...`.
    fn ns_rtproto(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall {
            ns, values, line, ..
        } = *call;
        let [protocol] = values else {
            return Err(NsError::at(
                line,
                usage(&format!("${ns} rtproto Static|Session|Manual")),
            ));
        };
        // Emulab's mapping of ns routing protocols to routertype.
        let routertype = match protocol.to_ascii_lowercase().as_str() {
            "static" => "static",
            "session" => "session",
            "manual" => "manual",
            _ => {
                return Err(NsError::at(
                    line,
                    NsErrorKind::InvalidValue {
                        what: "routing protocol".into(),
                        value: (*protocol).to_string(),
                        reason: "use Static, Session or Manual".into(),
                    },
                ));
            }
        };
        self.routertype = Some(routertype);
        Ok(String::new())
    }

    /// `$ns run ...`.
    fn ns_run(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall { ns, args, line, .. } = *call;
        if !args.is_empty() {
            return Err(NsError::at(line, usage(&format!("${ns} run"))));
        }
        self.run_line = Some(line);
        Ok(String::new())
    }

    /// `$ns attach-agent ...`.
    fn ns_attach_agent(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall {
            ns, values, line, ..
        } = *call;
        let [node, agent] = values else {
            return Err(NsError::at(
                line,
                usage(&format!("${ns} attach-agent NODE AGENT")),
            ));
        };
        let n = self.node_arg(node).at_line(line)?;
        let t = self.traffic_arg(agent).at_line(line)?;
        self.attach_agent(n, t).at_line(line)?;
        Ok(String::new())
    }

    /// `$ns connect ...`.
    fn ns_connect(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall {
            ns, values, line, ..
        } = *call;
        let [source, sink] = values else {
            return Err(NsError::at(
                line,
                usage(&format!("${ns} connect SOURCE_AGENT SINK_AGENT")),
            ));
        };
        let s = self.traffic_arg(source).at_line(line)?;
        let d = self.traffic_arg(sink).at_line(line)?;
        self.connect(s, d, line).at_line(line)?;
        Ok(String::new())
    }

    /// `$ns event-group ...`.
    fn ns_event_group(&mut self, call: &SimCall<'_>) -> NsResult<String> {
        let SimCall {
            ns, values, line, ..
        } = *call;
        let [members] = values else {
            return Err(NsError::at(
                line,
                usage(&format!("${ns} event-group [list OBJECT ...]")),
            ));
        };
        let members = list::split(members).map_err(|m| {
            NsError::at(
                line,
                NsErrorKind::Syntax(format!("the group's member list: {m}")),
            )
        })?;
        let id = self
            .create(ObjKind::Group(self.groups.len()), line)
            .at_line(line)?;
        let g = self.groups.len();
        self.groups.push(GroupData {
            obj: id,
            members: Vec::new(),
        });
        for member in &members {
            self.add_group_member(g, member).at_line(line)?;
        }
        Ok(self.name_of(id).to_string())
    }
}
